//! Integration-test crate: see tests/tests.
