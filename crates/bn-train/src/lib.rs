//! Fashion-MNIST data and training on burn-train (filled by the training-pipeline issue).
