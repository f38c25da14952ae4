//! Node filesystem operations (being written).
