use clap::Parser;
use log::LevelFilter;

fn main() {
    let cli = abguard::cli::Cli::parse();
    let level = match cli.verbose {
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        _ => LevelFilter::Debug,
    };
    let in_initrd = matches!(cli.command, abguard::cli::Command::Initrd { .. });
    abguard::kmsg::Logger::init(in_initrd, if in_initrd { LevelFilter::Info } else { level });
    match abguard::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(abguard::exit_code(&e));
        }
    }
}
