use clap::Parser;

fn main() {
    let cli = sagetrain::cli::Cli::parse();
    std::process::exit(sagetrain::run(cli));
}
