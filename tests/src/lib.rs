//! ironflow integration tests live in `tests/tests/*.rs`; shared helpers in `tests/tests/common/`.
