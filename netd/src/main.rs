use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("NETD_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,hickory_proto=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = netd::cli::Cli::parse();
    if let Err(e) = netd::cli::run(cli) {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}
