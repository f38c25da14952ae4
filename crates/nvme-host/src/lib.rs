//! NVMe/TCP host library (being written).
