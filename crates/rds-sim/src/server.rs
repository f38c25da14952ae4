//! SSH front end of the simulator (written separately from the engine).
