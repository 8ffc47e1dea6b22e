//! KD
