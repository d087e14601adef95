//! errand-worker (being written).
