//! Examples for codekeep; see `examples/`.
