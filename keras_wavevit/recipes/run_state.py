"""The output directory of a training run: what is done, and the rerun contract.

`phases.json` (written atomically after each phase) records the run's
configuration and the phases it finished (`fit`, `evaluate`, `figures`,
`export`, `summary`) with their results, so a run killed at any moment
continues with the first unfinished phase and never repeats a finished one.

Starting `train` on an output directory:

- empty or missing: a new run;
- holding an unfinished run of the same configuration (every field but
  `output`, `overwrite` and `verbose`): that run resumes;
- holding a finished run, a run of another configuration, or run files
  without `phases.json` (an older or foreign run): refused with a message;
- with `overwrite`: whatever run is there, its files are deleted first (only
  the files a run writes; anything else in the folder is left alone) and a
  new run starts.

In a multi-worker job only the chief writes to the output directory; the
other workers write to a private temporary directory (deleted at the end)
and read the chief's state and backups to resume the same way.
"""

import json
import os
import shutil
import tempfile

from keras_wavevit import files

PHASES = ("plan", "fit", "evaluate", "figures", "export", "summary")
STATE_FILE = "phases.json"
# Everything a run writes into its output directory.
RUN_FILES = (
    STATE_FILE, "best.keras", "final.keras", "log.csv", "backup", "tensorboard", "loss.png",
    "accuracy.png", "predictions.png", "gradcam.png", "saved_model", "summary.json",
)


class RunState:
    """The phases a run has finished, kept in `<output>/phases.json`.

    Use `RunState.open`, which applies the rerun contract.

    Attributes:
        output: Where this process writes (a private temporary directory
            on a non-chief worker).
        shared_output: The run's output directory (the chief's).
        chief: Whether this process writes the run's output.
        phases: `phase -> result dict` of the finished phases.

    Example:

    >>> import tempfile
    >>> from keras_wavevit.recipes.train_config import TrainConfig
    >>> state = RunState.open(TrainConfig(output=tempfile.mkdtemp()))
    >>> state.finish("fit", {"epochs_completed": 3})
    >>> RunState.open(TrainConfig(output=state.output)).result("fit")  # doctest: +ELLIPSIS
    Resuming the unfinished run in ... (finished: fit).
    {'epochs_completed': 3}
    """

    def __init__(self, output, shared_output, chief, identity, phases):
        self.output = output
        self.shared_output = shared_output
        self.chief = chief
        self.identity = identity
        self.phases = phases

    @classmethod
    def open(cls, config, chief=True):
        """Opens `config`'s output directory for a new or resumed run.

        Args:
            config: The run's `TrainConfig`.
            chief: Whether this process writes the output (multi-worker).

        Returns:
            A `RunState`.

        Raises:
            ValueError: The directory holds a finished run, a run of another
                configuration or foreign run files, and `overwrite` is off.
        """
        shared = config.output_directory()
        identity = config.identity()
        stored = _read_state(shared)
        if stored and stored["config"] is not None:
            # A run stored before an option existed ran with its default.
            stored["config"] = {**type(config)().identity(), **stored["config"]}
        if not chief:
            same_run = stored and stored["config"] == identity and not config.overwrite
            phases = stored["phases"] if same_run else {}
            output = tempfile.mkdtemp(prefix="keras-wavevit-worker-")
            return cls(output, shared, False, identity, phases)
        problem = _refusal(shared, stored, identity)
        if problem and not config.overwrite:
            raise ValueError(
                f"{problem} Pass --overwrite (overwrite=True) to replace it, or choose "
                "another --output."
            )
        if config.overwrite:
            clear_run(shared)
            stored = None
        state = cls(shared, shared, True, identity, stored["phases"] if stored else {})
        state.remove_partial_writes()
        if stored:
            print(f"Resuming the unfinished run in {shared} (finished: "
                  f"{', '.join(state.phases) or 'nothing yet'}).")
        state._write()
        return state

    def done(self, phase):
        """Whether `phase` finished in this or an earlier attempt."""
        return phase in self.phases

    def result(self, phase):
        """The result dict recorded for a finished `phase`."""
        return self.phases[phase]

    def finish(self, phase, result):
        """Records `phase` as finished with its `result` (atomically)."""
        if phase not in PHASES:
            raise ValueError(f"Unknown phase {phase!r}; expected one of {list(PHASES)}.")
        self.phases[phase] = result
        self._write()

    def path(self, *names):
        """A path inside this process's output directory."""
        return os.path.join(self.output, *names)

    def remove_partial_writes(self):
        """Removes `.partial-*` leftovers of a killed writer in the output."""
        for folder in (self.output, self.path("saved_model")):
            for name in files.remove_partial_writes(folder):
                print(f"Removed an unfinished write: {os.path.join(folder, name)}.")

    def close(self):
        """Deletes a non-chief worker's private directory."""
        if not self.chief:
            shutil.rmtree(self.output, ignore_errors=True)

    def _write(self):
        text = json.dumps({"config": self.identity, "phases": self.phases}, indent=2)
        files.atomic_write_text(self.path(STATE_FILE), text)


def _read_state(output):
    path = os.path.join(output, STATE_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as file:
            stored = json.load(file)
        return {"config": dict(stored["config"]), "phases": dict(stored["phases"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {"config": None, "phases": {}}


def _refusal(output, stored, identity):
    """Why a new run may not use `output`, or None."""
    if stored is None:
        present = sorted(name for name in RUN_FILES if os.path.exists(os.path.join(output, name)))
        if present:
            return f"{output} holds files of another run ({', '.join(present)})."
        return None
    if stored["config"] != identity:
        old = stored["config"] or {}
        changed = sorted(key for key in set(old) | set(identity) if old.get(key) != identity.get(key))
        return (f"{output} holds a run of another configuration (differs in: "
                f"{', '.join(changed)}).")
    if "summary" in stored["phases"]:
        return f"{output} holds a finished run of this configuration."
    return None


def clear_run(output):
    """Deletes the files a run writes in `output` (`phases.json` first).

    Other files in the folder are left alone.

    Example:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> open(os.path.join(folder, "log.csv"), "w").close()
    >>> open(os.path.join(folder, "notes.txt"), "w").close()
    >>> clear_run(folder)
    >>> os.listdir(folder)
    ['notes.txt']
    """
    files.remove_partial_writes(output)
    for name in RUN_FILES:
        path = os.path.join(output, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
