"""Records (the unified example), their validation and I/O, and the one image loader."""

from lmmr1.data.images import ImageConfig, ImageLoadError, load_image, load_record_images, resolve_image_path
from lmmr1.data.records import (
    UNANSWERABLE,
    Record,
    RecordError,
    load_records,
    read_records,
    validate_record,
    write_records,
)

__all__ = [
    "UNANSWERABLE",
    "ImageConfig",
    "ImageLoadError",
    "Record",
    "RecordError",
    "load_image",
    "load_record_images",
    "load_records",
    "read_records",
    "resolve_image_path",
    "validate_record",
    "write_records",
]
