//! Pipeline unit tests.
