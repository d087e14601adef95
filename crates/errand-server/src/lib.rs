//! errand-server (being written).
