//! One module per `kd` subcommand.

pub mod data;
pub mod models;
pub mod print_config;
