"""The stage cache's former home: it is `nucleaizer_tf.io.stage_cache` (file I/O belongs to `io`); the names
stay importable from here."""

from nucleaizer_tf.io.stage_cache import ItemCache, StageLog

__all__ = ["ItemCache", "StageLog"]
