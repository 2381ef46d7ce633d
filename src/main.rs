// Only the static musl build: glibc's malloc keeps freed memory already (see Cargo.toml).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;
use abguard::exit::Failure;
use log::LevelFilter;

fn main() {
    // like cgpt and other C tools: a closed pipe ends us quietly instead of a panic
    // (which panic=abort would turn into SIGABRT)
    // SAFETY: setting a signal disposition to the default before any thread exists.
    unsafe {
        nix::libc::signal(nix::libc::SIGPIPE, nix::libc::SIG_DFL);
    }
    // OsString: an image path need not be UTF-8 (std::env::args would panic on it)
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // systemd runs generators by path with three directories; argv[0] selects the mode
    if args
        .first()
        .is_some_and(|a| a.as_encoded_bytes().ends_with(b"abguard-generator"))
    {
        abguard::act::kmsg::Logger::init(true, LevelFilter::Warn);
        let a = abguard::cli::args::GeneratorArgs {
            root: "/".into(),
            dirs: args[1..]
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
        };
        let code = abguard::verbs::generator::run(&a).unwrap_or_else(|e| e.code());
        std::process::exit(code.code());
    }
    let cli = abguard::cli::Cli::parse_args(args);
    let level = match cli.globals.verbose {
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        _ => LevelFilter::Debug,
    };
    // /dev/kmsg only in a real initrd; elsewhere (tests, benchmarks, the booted system)
    // stderr, so nothing floods the host's kernel log
    let in_initrd = matches!(
        cli.command,
        abguard::cli::Command::Initrd(_) | abguard::cli::Command::Emergency(_)
    ) && std::path::Path::new("/etc/initrd-release").exists();
    abguard::act::kmsg::Logger::init(in_initrd, if in_initrd { LevelFilter::Info } else { level });
    match abguard::run(cli) {
        Ok(code) => std::process::exit(code.code()),
        Err(Failure::Usage { verb, message }) => abguard::cli::usage_error(verb, &message).exit(),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(e.code().code());
        }
    }
}
