//! errand-client (being written).
