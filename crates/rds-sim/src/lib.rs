//! Simulator of the RDS RouterOS CLI.

pub mod ast;
pub mod error;
pub mod lexer;
pub mod menu;
pub mod parser;
pub mod server;
