"""AdamW whose whole update is one fused loop per step on TensorFlow.

`keras.optimizers.AdamW` updates each variable with about twenty small graph
ops (decay, two moment updates, the step) plus a handful of scalar ops. A
Wave-ViT has a few hundred variables, most of them small (biases, norms), so
on a CPU the optimizer's cost is thousands of op dispatches per step rather
than arithmetic. This `AdamW` computes the same update, for every variable at
once, in one XLA-compiled function (`keras_wavevit.fused_ops`), which also
applies the decoupled weight decay.

The formulas, the order (decay, then the Adam step) and every argument, the
optimizer's variables and its config are those of `keras.optimizers.AdamW`;
results agree to float32 rounding. Under a `tf.distribute.MirroredStrategy`
(several GPUs, or logical CPU devices) the gradients are all-reduced as Keras
does and the fused loop then runs once per device on that device's copy of the
variables. Where the fused path does not apply it is
the Keras optimizer unchanged: with fused ops off or on other backends, under
other strategies, with `amsgrad`, or with gradient accumulation.
"""

import keras
from keras import ops

from keras_wavevit.layers.fusion import fused_ops_enabled


@keras.saving.register_keras_serializable(package="keras_wavevit")
class AdamW(keras.optimizers.AdamW):
    """`keras.optimizers.AdamW`, updated in one fused loop on TensorFlow.

    Takes the arguments of `keras.optimizers.AdamW` (learning rate or
    schedule, weight decay and its exclusions, betas, epsilon, clipping,
    EMA, loss scale).

    Example:

    >>> import numpy as np
    >>> import keras
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> model.compile(optimizer=AdamW(1e-3, weight_decay=0.05), loss="mse")
    >>> history = model.fit(np.ones((4, 3)), np.zeros((4, 2)), verbose=0)
    >>> sorted(history.history)
    ['loss']
    """

    def _fused_update_applies(self):
        if (
            not fused_ops_enabled()
            or self.amsgrad
            or self.gradient_accumulation_steps
        ):
            return False
        import tensorflow as tf

        return not tf.distribute.has_strategy() or (
            type(tf.distribute.get_strategy()) is tf.distribute.MirroredStrategy
        )

    def _apply_weight_decay(self, variables):
        if not self._fused_update_applies():
            super()._apply_weight_decay(variables)
        # Otherwise the fused update applies it.

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        import tensorflow as tf

        if not self._fused_update_applies() or tf.distribute.has_strategy():
            # Under a strategy Keras all-reduces the gradients, then calls
            # `_distributed_tf_update_step` (below) in cross-replica context.
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        self._fused_update(grads, trainable_variables, learning_rate)

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        if not self._fused_update_applies():
            return super()._distributed_tf_update_step(distribution, grads_and_vars, learning_rate)
        import tensorflow as tf

        grads, variables = zip(*grads_and_vars)
        for index, device in enumerate(distribution.extended.worker_devices):

            def local(value, index=index):
                values = distribution.experimental_local_results(value)
                return values[index] if len(values) > 1 else values[0]

            with tf.device(device):
                self._fused_update([local(grad) for grad in grads], variables,
                                   local(learning_rate), local=local)

    def _fused_update(self, grads, variables, learning_rate, local=lambda value: value):
        """One fused call updating `variables` (and their moments) in place.

        `local` picks one device's copy of a distributed value (identity
        without a strategy).
        """
        indices = [self._get_variable_index(variable) for variable in variables]
        # Exclusions match the `tf.Variable`'s name ("norm/gamma:0"), as in
        # Keras' own TensorFlow weight decay.
        decay = tuple(
            self.weight_decay is not None and self._use_weight_decay(_handle(variable))
            for variable in variables
        )
        key = (tuple(indices), decay)
        if getattr(self, "_fused_key", None) != key:
            self._fused_key = key
            self._fused_function = _compile_update(self, decay)
        self._fused_function(
            list(grads),
            [local(_handle(variable)) for variable in variables],
            [local(_handle(self._momentums[index])) for index in indices],
            [local(_handle(self._velocities[index])) for index in indices],
            ops.cast(learning_rate, "float32"),
            ops.cast(local(_handle(self.iterations)) + 1, "float32"),
        )


def _handle(variable):
    """The `tf.Variable` behind a Keras variable."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def _compile_update(optimizer, decay):
    """One XLA function updating every variable: decay, moments, step."""
    import tensorflow as tf

    beta_1, beta_2 = optimizer.beta_1, optimizer.beta_2
    epsilon, weight_decay = optimizer.epsilon, optimizer.weight_decay

    def update(grads, variables, momentums, velocities, learning_rate, step):
        for grad, variable, m, v, decayed in zip(grads, variables, momentums, velocities, decay):
            dtype = variable.dtype
            lr = tf.cast(learning_rate, dtype)
            local_step = tf.cast(step, dtype)
            alpha = lr * tf.sqrt(1 - tf.cast(beta_2, dtype) ** local_step) / (
                1 - tf.cast(beta_1, dtype) ** local_step
            )
            grad = tf.cast(grad, dtype)
            value = variable.read_value()
            if decayed:
                value = value - value * tf.cast(weight_decay, dtype) * lr
            m_value, v_value = m.read_value(), v.read_value()
            m_value = m_value + (grad - m_value) * (1 - beta_1)
            v_value = v_value + (tf.square(grad) - v_value) * (1 - beta_2)
            m.assign(m_value)
            v.assign(v_value)
            variable.assign(value - (m_value * alpha) / (tf.sqrt(v_value) + epsilon))

    return tf.function(update, jit_compile=True, autograph=False)
