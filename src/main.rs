fn main() -> std::process::ExitCode {
    muxcat::cli::main()
}
