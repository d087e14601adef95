//! errand-sqlite (being written).
