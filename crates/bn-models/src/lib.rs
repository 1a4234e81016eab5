//! Models with a selectable normalization layer (filled by the training-pipeline issue).
