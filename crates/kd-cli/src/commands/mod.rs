//! One module per `kd` subcommand.

pub mod data;
pub mod eval;
pub mod methods;
pub mod models;
pub mod plan;
pub mod print_config;
pub mod suite;
pub mod time;
pub mod train;
