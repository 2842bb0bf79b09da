"""AdamW that updates each variable with TensorFlow's fused Adam kernel.

`keras.optimizers.AdamW` updates each variable with about twenty small graph
ops (decay, two moment updates, the step) plus a handful of scalar ops. A
Wave-ViT has a few hundred variables, most of them small (biases, norms), so
on a CPU the optimizer's cost is thousands of op dispatches per step rather
than arithmetic. This `AdamW` computes the same update with one
`ResourceApplyAdam` kernel per variable (TensorFlow's own Adam loop: both
moments and the step in one pass) and, for decayed variables, one
`ResourceApplyGradientDescent` for the decoupled weight decay. The step's
scalars (learning rate, bias corrections) are computed once per dtype.

The formulas, the order (decay, then the Adam step) and every argument, the
optimizer's variables and its config are those of `keras.optimizers.AdamW`;
results agree to float32 rounding. Under a `tf.distribute.MirroredStrategy`
(several GPUs, or logical CPU devices) the gradients are all-reduced as Keras
does and the kernels then run on each device's copy of the variables. Where
this path does not apply it is the Keras optimizer unchanged: with fused ops
off (`keras_wavevit.fused_ops(False)`) or on other backends, under other
strategies, with `amsgrad`, or with gradient accumulation.
"""

import keras

from keras_wavevit.layers.fusion import fused_ops_enabled


@keras.saving.register_keras_serializable(package="keras_wavevit")
class AdamW(keras.optimizers.AdamW):
    """`keras.optimizers.AdamW`, one fused Adam kernel per variable on TensorFlow.

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
        """Updates `variables` (and their moments) in place: decay, then Adam.

        `local` picks one device's copy of a distributed value (identity
        without a strategy).
        """
        import tensorflow as tf

        step = tf.cast(local(_handle(self.iterations)) + 1, "float32")
        scalars = {}
        for grad, variable in zip(grads, variables):
            index = self._get_variable_index(variable)
            target = local(_handle(variable))
            dtype = target.dtype
            if dtype not in scalars:
                scalars[dtype] = _step_scalars(self, learning_rate, step, dtype)
            lr, beta_1_power, beta_2_power, beta_1, beta_2, epsilon, weight_decay = scalars[dtype]
            # Exclusions match the `tf.Variable`'s name ("norm/gamma:0"), as in
            # Keras' own TensorFlow weight decay.
            if self.weight_decay is not None and self._use_weight_decay(_handle(variable)):
                # variable -= lr * (variable * weight_decay), Keras' decay.
                tf.raw_ops.ResourceApplyGradientDescent(
                    var=target.handle, alpha=lr, delta=target.read_value() * weight_decay
                )
            tf.raw_ops.ResourceApplyAdam(
                var=target.handle,
                m=local(_handle(self._momentums[index])).handle,
                v=local(_handle(self._velocities[index])).handle,
                beta1_power=beta_1_power,
                beta2_power=beta_2_power,
                lr=lr,
                beta1=beta_1,
                beta2=beta_2,
                epsilon=epsilon,
                grad=tf.cast(grad, dtype),
            )


def _handle(variable):
    """The `tf.Variable` behind a Keras variable."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def _step_scalars(optimizer, learning_rate, step, dtype):
    """Learning rate, bias corrections and constants of one step, in `dtype`.

    `ResourceApplyAdam` computes Keras' step size from them,
    `lr * sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)`.
    """
    import tensorflow as tf

    beta_1 = tf.cast(optimizer.beta_1, dtype)
    beta_2 = tf.cast(optimizer.beta_2, dtype)
    local_step = tf.cast(step, dtype)
    return (
        tf.cast(learning_rate, dtype),
        tf.pow(beta_1, local_step),
        tf.pow(beta_2, local_step),
        beta_1,
        beta_2,
        tf.cast(optimizer.epsilon, dtype),
        tf.cast(optimizer.weight_decay or 0.0, dtype),
    )
