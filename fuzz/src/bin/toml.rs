//! TOML files: grid files (`Grid::load`: datasets, models, recipes, seeds, products and the
//! recipes' own `config` files) and `train --config` files (the tokens, then the train flags'
//! parser).

use visionnet::cli::config_file;
use visionnet::train::experiment::Grid;
use visionnet::train::flags;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Some(path) = visionnet_fuzz::stage("grid.toml", data) {
            let _ = Grid::load(&path);
        }
        if let Some(path) = visionnet_fuzz::stage("config.toml", data)
            && let Ok(tokens) = config_file::tokens(&path)
        {
            let _ = flags::parse(&tokens);
        }
    });
}
