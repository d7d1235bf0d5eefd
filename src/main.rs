fn main() {
    if let Err(error) = visionnet::cli::run() {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
