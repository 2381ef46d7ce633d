// Only the static musl build: glibc's malloc keeps freed memory already (see Cargo.toml).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;
use abguard::exit::Failure;
use log::LevelFilter;

// Nothing in the static build can unwind: it is panic=abort and link/discard-eh-frame.ld
// drops the unwind tables, so libunwind (≈50 KB of x86-64 code) could not walk a single
// frame. It is linked only because std's precompiled code names these entry points (its
// landing pads, its personality routine, the RUST_BACKTRACE printer); defining them here
// keeps libunwind.a out. None is reached: a panic aborts before any landing pad runs, and
// a backtrace ends at once (RUST_BACKTRACE prints no frames, as it could print none before).
#[cfg(all(target_env = "musl", panic = "abort"))]
mod no_unwind {
    use std::ffi::{c_int, c_void};
    type Ctx = *mut c_void;
    const END_OF_STACK: c_int = 5; // _URC_END_OF_STACK

    #[no_mangle]
    extern "C" fn _Unwind_Backtrace(_trace: *mut c_void, _arg: *mut c_void) -> c_int {
        END_OF_STACK
    }
    #[no_mangle]
    extern "C" fn _Unwind_Resume(_exception: *mut c_void) -> ! {
        std::process::abort()
    }
    // Each takes a frame context, which only a walk above would hand out: unreachable.
    macro_rules! unreachable_fns {
        ($($name:ident($($arg:ty),*) $(-> $ret:ty)?;)*) => {$(
            #[no_mangle]
            extern "C" fn $name($(_: $arg),*) $(-> $ret)? {
                std::process::abort()
            }
        )*};
    }
    unreachable_fns! {
        _Unwind_GetIP(Ctx) -> usize;
        _Unwind_GetIPInfo(Ctx, *mut c_int) -> usize;
        _Unwind_GetCFA(Ctx) -> usize;
        _Unwind_GetRegionStart(Ctx) -> usize;
        _Unwind_GetTextRelBase(Ctx) -> usize;
        _Unwind_GetDataRelBase(Ctx) -> usize;
        _Unwind_GetLanguageSpecificData(Ctx) -> *mut c_void;
        _Unwind_SetGR(Ctx, c_int, usize);
        _Unwind_SetIP(Ctx, usize);
        _Unwind_FindEnclosingFunction(*mut c_void) -> *mut c_void;
    }
}

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
