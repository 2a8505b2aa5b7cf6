"""The one task pipeline: :mod:`.run` (how a task runs, for every executor), :mod:`.frames`
(image tasks on a video's sampled frames) and :mod:`.record` (how a result is recorded, for
every recorder)."""
