//! ironflow integration tests live in tests/tests/*.rs
