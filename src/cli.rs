//! The command line (CONTRACT section 1).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use std::io::Write;

use crate::core::Command;
use crate::lang::{ConnectArgs, ListenArgs, SerialArgs, UdpArgs};
use crate::pipe::{PipeOptions, PipeRole};
use crate::script::{self, RunOptions};
use crate::transcript::{self, Mark};
use crate::tui::TuiOptions;

const EXAMPLES: &str = "\
Examples:
  muxcat run script.mux                  run a script, print events
  printf 'connect 127.0.0.1:7000\\nsend hello\\nwaitfor ^hello$\\n' | muxcat --json
  muxcat run --keep-going - < checks.mux continue past failed commands
  muxcat connect 127.0.0.1:7000          like nc 127.0.0.1 7000
  muxcat listen 7000                     like nc -l 7000
  muxcat completions bash > /etc/bash_completion.d/muxcat";

#[derive(Parser, Debug)]
#[command(
    name = "muxcat",
    version,
    about = "An interactive netcat-style multiplexer: many TCP, TLS and UDP sessions, scriptable and recorded",
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Sub>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Write a transcript of every session into DIR
    #[arg(long, global = true, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// Events as JSON lines (stdout in `run`, stderr in pipe mode)
    #[arg(long, global = true)]
    pub json: bool,
    /// Keymap: default, vim, emacs, or a TOML file
    #[arg(long, global = true, value_name = "NAME|FILE")]
    pub keymap: Option<String>,
    /// Open what a profile describes first (the TUI): $XDG_CONFIG_HOME/muxcat/profiles/NAME.toml or a .toml path
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// The TUI's send panel: sequences from FILE (default: $XDG_CONFIG_HOME/muxcat/sequences.toml)
    #[arg(long, global = true, value_name = "FILE")]
    pub sequences: Option<PathBuf>,
    /// Write a diagnostic log to FILE
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Print no diagnostics
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more diagnostics
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Scripts may run programs: the exec command, Lua's os.execute and
    /// io.popen (--lua-exec is the same flag); off by default
    #[arg(long = "allow-exec", alias = "lua-exec", global = true)]
    pub lua_exec: bool,
    /// Lines of scrollback the TUI keeps per session (a recording keeps all) [default: 100000]
    #[arg(long, global = true, value_name = "N")]
    pub scrollback_lines: Option<usize>,
    /// Transcript version to write: v3 writes binary chunks that compress as LZ4 frames in base64 (`<~`/`>~`), v2 the rest of mostly binary chunks as base64 (`<=`/`>=`), v1 escapes every byte [default: v3]
    #[arg(long, global = true, value_name = "VERSION", value_enum)]
    pub transcript_format: Option<crate::transcript::Format>,
    /// Defaults for these options from FILE (default: $XDG_CONFIG_HOME/muxcat/config.toml, if it exists)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl GlobalArgs {
    /// `--scrollback-lines`, or its default.
    pub fn scrollback_lines(&self) -> usize {
        self.scrollback_lines.unwrap_or(crate::tui::app::SCROLLBACK_LINES)
    }

    /// `--transcript-format`, or its default.
    pub fn transcript_format(&self) -> crate::transcript::Format {
        self.transcript_format.unwrap_or_default()
    }
}

#[derive(Subcommand, Debug)]
pub enum Sub {
    /// The terminal UI; each -c command runs at start, in order
    #[command(
        after_help = "Examples:\n  muxcat tui -c 'listen 7000' -c 'connect 127.0.0.1:7000'\n  muxcat tui --keymap vim"
    )]
    Tui {
        #[arg(short = 'c', value_name = "CMD")]
        commands: Vec<String>,
    },
    /// A first look: the TUI with a local echo server and clients talking to it
    Demo,
    /// Run a script headless, print events, exit with a status
    #[command(after_help = "Exit status: 0 all commands succeeded, 1 a command failed, 2 usage error.")]
    Run {
        /// Script file, or - for stdin (the default)
        #[arg(value_name = "FILE|-")]
        file: Option<String>,
        /// Continue after a failed command (and exit 1 at the end)
        #[arg(long)]
        keep_going: bool,
        /// Keep sessions open after the script until interrupted
        #[arg(long)]
        stay: bool,
        /// The file is Lua (chosen by a .lua extension otherwise)
        #[arg(long)]
        lua: bool,
    },
    /// One outbound session
    #[command(
        after_help = "Examples:\n  muxcat connect example.org:80\n  muxcat connect --tls --ca ca.pem device.local:8443\n  muxcat connect --reconnect --preamble 'login admin' device.local:23\n  muxcat connect -s 127.0.0.2 -p 5000 device.local:23          from that address and port (nc -s -p)\n  muxcat connect --proxy 127.0.0.1:1080 --proxy-type socks5 device.local:23\n  NCAT_PROXY_AUTH=me:pw muxcat connect --proxy proxy:3128 example.org:443"
    )]
    Connect {
        #[command(flatten)]
        args: ConnectArgs,
        #[command(flatten)]
        front: FrontArgs,
    },
    /// One listener
    #[command(after_help = "Examples:\n  muxcat listen 7000\n  muxcat listen --tls 127.0.0.1:8443")]
    Listen {
        #[command(flatten)]
        args: ListenArgs,
        #[command(flatten)]
        front: FrontArgs,
        /// Pipe mode: serve every client at once (stdin to all), like ncat -l -k
        #[arg(long, short = 'k')]
        keep_open: bool,
        /// Pipe mode: relay every client's bytes to all others and stdout
        #[arg(long)]
        broker: bool,
    },
    /// One UDP socket
    #[command(
        after_help = "Examples:\n  muxcat udp --to 127.0.0.1:5000 0\n  muxcat udp --multicast 239.1.2.3 5000\n  muxcat udp --per-peer --timeout 30s 5683"
    )]
    Udp {
        #[command(flatten)]
        args: UdpArgs,
        #[command(flatten)]
        front: FrontArgs,
    },
    /// A tapping proxy: relay each client to TARGET, both directions traced on stderr (socat -v) or shown in the TUI (--tui)
    #[command(
        after_help = "Examples:\n  muxcat proxy 8080 device.local:80                 trace both directions on stderr\n  muxcat proxy --hex 1502 plc:502                   as hex dumps\n  muxcat proxy -q --record rec 8443 device:443      relay and record, no trace\n  muxcat proxy --tls-in --cert me.pem --key me.key --tls-out --insecure 8443 device:443\n  muxcat proxy --tui 8080 device.local:80           watch it in the TUI"
    )]
    Proxy {
        #[command(flatten)]
        args: crate::lang::proxy::ProxyArgs,
        /// No trace (errors still show)
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Trace chunks as hex dumps
        #[arg(long)]
        hex: bool,
        /// The TUI, with the proxy's sessions in it
        #[arg(long)]
        tui: bool,
    },
    /// One serial port (a pipe like picocom/socat when not on a terminal), or --list the ports
    #[command(
        after_help = "Examples:\n  muxcat serial /dev/ttyUSB0                       TUI on a terminal, 115200 8N1\n  muxcat serial --params 9600,8E1 /dev/ttyS0\n  muxcat serial --reconnect --wait /dev/ttyACM0    survive unplugging the board\n  muxcat serial /dev/ttyUSB0 < firmware.bin        a byte-exact pipe\n  muxcat serial --list"
    )]
    Serial {
        #[command(flatten)]
        args: SerialArgs,
        #[command(flatten)]
        front: FrontArgs,
    },
    /// Are ports open? Connect and close, like nc -z: exit 0 when all are, 1 when one is not
    #[command(
        after_help = "Examples:\n  muxcat check 127.0.0.1:22\n  muxcat check --timeout 500ms device.local:20-25\n  muxcat wait-for --timeout 60s device.local:23 && muxcat connect device.local:23"
    )]
    Check {
        /// The `check` command's arguments: [--timeout DUR] HOST:PORT|HOST:LOW-HIGH...
        #[arg(
            value_name = "ARGS",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        args: Vec<String>,
    },
    /// Wait until a port opens: exit 0 once it does, 1 at the timeout (default 30s)
    #[command(name = "wait-for")]
    WaitFor {
        /// The `wait-for` command's arguments: [--timeout DUR] HOST:PORT
        #[arg(
            value_name = "ARGS",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        args: Vec<String>,
    },
    /// Write transcripts as a capture Wireshark and tshark open (TCP/UDP as packets, serial and others as a user link type)
    #[command(
        after_help = "Examples:\n  muxcat export --pcapng out.pcapng recordings/*.log\n  tshark -r out.pcapng -d tcp.port==1502,mbtcp -Y mbtcp"
    )]
    Export {
        /// The capture to write (pcapng)
        #[arg(long, value_name = "OUT")]
        pcapng: PathBuf,
        /// Transcripts, merged in time order
        #[arg(value_name = "TRANSCRIPT", required = true)]
        transcripts: Vec<PathBuf>,
    },
    /// View a recorded transcript
    Replay {
        #[arg(value_name = "TRANSCRIPT")]
        transcript: PathBuf,
        /// Write the decoded received (in) or sent (out) byte stream; of a
        /// proxy session, what its client sent (c2s = in) or got (s2c = out)
        #[arg(long, value_name = "in|out|c2s|s2c")]
        raw: Option<String>,
    },
    /// Print the effective keymap as TOML
    Keymap {
        #[arg(long)]
        dump: bool,
    },
    /// Print shell completions
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), made from these same definitions: muxcat man > muxcat.1; man ./muxcat.1
    Man {
        /// A subcommand's own page (muxcat-proxy.1): muxcat man proxy
        #[arg(value_name = "SUBCOMMAND")]
        subcommand: Option<String>,
    },
}

/// `--pipe` / `--tui` on connect, listen and udp.
#[derive(Args, Debug, Clone, Default)]
pub struct FrontArgs {
    /// Pipe mode even on a terminal (stdin to the peer, received bytes to stdout)
    #[arg(long, conflicts_with = "tui")]
    pub pipe: bool,
    /// The TUI even when stdin/stdout are not terminals
    #[arg(long)]
    pub tui: bool,
    /// Pipe mode: end the run when the peer ends its output (ncat 7.96's
    /// default); without it stdin still goes to the peer until it ends
    #[arg(long)]
    pub exit_on_eof: bool,
    /// Pipe mode: only send stdin; what arrives is not written out, and the run ends with stdin (ncat --send-only)
    #[arg(long, conflicts_with = "recv_only")]
    pub send_only: bool,
    /// Pipe mode: only receive; stdin is not read (ncat --recv-only)
    #[arg(long)]
    pub recv_only: bool,
    /// Pipe mode: send CRLF for each LF of stdin (ncat -C)
    #[arg(long, short = 'C')]
    pub crlf: bool,
    /// Pipe mode: end the run this long after stdin ends (OpenBSD nc -q SECS; muxcat's -q is quiet)
    #[arg(long, value_name = "DUR", value_parser = crate::lang::parse_duration)]
    pub quit_after: Option<std::time::Duration>,
    /// Pipe mode: bytes out and in, rate and time on stderr while it runs (when stderr is a terminal), like pv
    #[arg(long)]
    pub progress: bool,
    /// Accepted for OpenBSD nc compatibility: the end of stdin always half-closes (nc -N)
    #[arg(short = 'N', hide = true)]
    pub shutdown_on_eof: bool,
}

/// Keeps the log writer alive until exit.
fn init_log(global: &GlobalArgs) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let path = global.log.as_ref()?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path.file_name()?;
    let appender = tracing_appender::rolling::never(dir, name);
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let level = if global.verbose {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_max_level(level)
        .try_init();
    Some(guard)
}

/// Pipe mode moves one stream: one runtime thread (plus the stdin and
/// stdout threads) beats work stealing across threads. Everything else
/// serves many sessions on all cores.
fn runtime(pipe_mode: bool) -> std::io::Result<tokio::runtime::Runtime> {
    if pipe_mode {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    }
}

pub fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Err(e) = crate::config::apply(&mut cli.global) {
        eprintln!("muxcat: {e}");
        return ExitCode::from(2);
    }
    let _log = init_log(&cli.global);
    // Many sessions need many fds: raise the soft limit to the hard one,
    // as servers commonly do.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let pipe_mode = match &cli.command {
        Some(
            Sub::Connect { front, .. }
            | Sub::Listen { front, .. }
            | Sub::Udp { front, .. }
            | Sub::Serial { front, .. },
        ) => !wants_tui(front),
        _ => false,
    };
    let rt = match runtime(pipe_mode) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("muxcat: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let global = cli.global.clone();
    let code = match cli.command {
        None if !std::io::stdin().is_terminal() => {
            rt.block_on(run_script(None, &global, false, false, false))
        }
        None => rt.block_on(tui(&global, None, Vec::new())),
        Some(Sub::Tui { commands }) => rt.block_on(tui(&global, None, commands)),
        Some(Sub::Demo) => rt.block_on(demo(&global)),
        Some(Sub::Run {
            file,
            keep_going,
            stay,
            lua,
        }) => rt.block_on(run_script(file, &global, keep_going, stay, lua)),
        Some(Sub::Connect { args, front }) => match args.spec() {
            Ok(spec) if wants_tui(&front) => {
                rt.block_on(tui(&global, Some(Command::Connect(Box::new(spec))), Vec::new()))
            }
            Ok(spec) => rt.block_on(pipe(PipeRole::Connect(spec), &global, &front)),
            Err(e) => usage_error(e),
        },
        Some(Sub::Listen {
            args,
            front,
            keep_open,
            broker,
        }) => match args.spec() {
            Ok(spec) if wants_tui(&front) => {
                rt.block_on(tui(&global, Some(Command::Listen(spec)), Vec::new()))
            }
            Ok(spec) => rt.block_on(pipe(
                PipeRole::Listen {
                    spec,
                    keep_open,
                    broker,
                },
                &global,
                &front,
            )),
            Err(e) => usage_error(e),
        },
        Some(Sub::Proxy { args, tui: true, .. }) => match args.spec() {
            Ok(spec) => rt.block_on(tui(&global, Some(Command::Proxy(Box::new(spec))), Vec::new())),
            Err(e) => usage_error(e),
        },
        Some(Sub::Proxy { args, quiet, hex, .. }) => {
            let trace = crate::proxy::Trace::choose(quiet, hex, global.json);
            rt.block_on(crate::proxy::run(
                args,
                trace,
                global.record.clone(),
                global.transcript_format(),
            ))
        }
        Some(Sub::Udp { args, front }) => match args.spec() {
            Ok(spec) if wants_tui(&front) => rt.block_on(tui(&global, Some(Command::Udp(spec)), Vec::new())),
            Ok(spec) if spec.per_peer.is_some() => usage_error(crate::core::CoreError::new(
                crate::core::ErrorCode::CommandInvalid,
                "--per-peer makes a session per sender: use it in the TUI or a script (muxcat run), not in pipe mode",
            )),
            Ok(spec) => {
                let line_input = args.session.mode == crate::core::Mode::Line;
                rt.block_on(pipe(PipeRole::Udp { spec, line_input }, &global, &front))
            }
            Err(e) => usage_error(e),
        },
        Some(Sub::Serial { args, front }) => match args.spec() {
            Ok(None) => list_ports(&global),
            Ok(Some(spec)) if wants_tui(&front) => {
                rt.block_on(tui(&global, Some(Command::Connect(Box::new(spec))), Vec::new()))
            }
            Ok(Some(spec)) => rt.block_on(pipe(PipeRole::Connect(spec), &global, &front)),
            Err(e) => usage_error(e),
        },
        Some(Sub::Check { args }) => rt.block_on(one_command("check", &args, &global)),
        Some(Sub::WaitFor { args }) => rt.block_on(one_command("wait-for", &args, &global)),
        Some(Sub::Export { pcapng, transcripts }) => match crate::export::export(&transcripts, &pcapng) {
            Ok(summary) => {
                if !global.quiet {
                    eprintln!("muxcat: {summary}");
                }
                0
            }
            Err(e) => {
                eprintln!("muxcat: export: {e}");
                1
            }
        },
        Some(Sub::Replay { transcript, raw }) => replay(&rt, &transcript, raw.as_deref(), &global),
        Some(Sub::Keymap { .. }) => {
            match crate::tui::keymap::Keymap::load_with_user(global.keymap.as_deref()) {
                Ok(map) => {
                    print!("{}", map.dump());
                    0
                }
                Err(errors) => {
                    for e in &errors.0 {
                        eprintln!("muxcat: keymap: {e}");
                    }
                    2
                }
            }
        }
        Some(Sub::Completions { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "muxcat", &mut std::io::stdout());
            0
        }
        Some(Sub::Man { subcommand }) => man_page(subcommand.as_deref()),
    };
    // Sessions were closed cleanly by their front end; do not wait for
    // stray blocking reads (stdin) to finish.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    ExitCode::from(code)
}

/// `muxcat check …`, `muxcat wait-for …`: the command as a one-line script
/// (its events printed, its exit status).
async fn one_command(name: &str, args: &[String], global: &GlobalArgs) -> u8 {
    let mut words = vec![name.to_string()];
    words.extend(args.iter().cloned());
    let line = format!("{}\n", crate::lang::words::join(&words));
    let opts = RunOptions {
        json: global.json,
        keep_going: false,
        stay: false,
        record_dir: None,
        transcript_format: global.transcript_format(),
        lua_exec: false,
        lua_file: None,
    };
    script::run(std::io::Cursor::new(line.into_bytes()), std::io::stdout(), opts).await
}

/// `muxcat man [SUBCOMMAND]`: the page clap_mangen makes of the command line.
fn man_page(subcommand: Option<&str>) -> u8 {
    let root = Cli::command().name("muxcat");
    let cmd = match subcommand {
        None => root,
        Some(name) => match root.find_subcommand(name) {
            // The page's name; leaked once (clap names are 'static), the
            // process ends right after.
            Some(sub) => sub
                .clone()
                .name(&*Box::leak(format!("muxcat-{name}").into_boxed_str())),
            None => {
                eprintln!("muxcat man: no subcommand {name:?}");
                return 2;
            }
        },
    };
    match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("muxcat man: {e}");
            1
        }
    }
}

/// `muxcat serial --list`: one port per line (a `ports` event with --json).
fn list_ports(global: &GlobalArgs) -> u8 {
    match crate::core::transport::serial::list_ports() {
        Ok(ports) if global.json => {
            println!(
                "{}",
                crate::core::Event::new(crate::core::EventKind::Ports(ports)).to_json()
            );
            0
        }
        Ok(ports) if ports.is_empty() => {
            eprintln!("muxcat: no serial ports found");
            0
        }
        Ok(ports) => {
            for p in ports {
                // Names from sysfs and USB descriptors: never raw to the terminal.
                println!("{}", crate::core::escape::escape_display(p.describe().as_bytes()));
            }
            0
        }
        Err(e) => {
            eprintln!("muxcat: {}: {}", e.code, e.text);
            1
        }
    }
}

fn usage_error(e: crate::core::CoreError) -> u8 {
    eprintln!("muxcat: {}: {}", e.code, e.text);
    2
}

/// connect/listen/udp open the TUI when stdin and stdout are terminals.
fn wants_tui(front: &FrontArgs) -> bool {
    front.tui || (!front.pipe && std::io::stdin().is_terminal() && std::io::stdout().is_terminal())
}

async fn pipe(role: PipeRole, global: &GlobalArgs, front: &FrontArgs) -> u8 {
    let opts = PipeOptions {
        json: global.json,
        quiet: global.quiet,
        record_dir: global.record.clone(),
        transcript_format: global.transcript_format(),
        exit_on_eof: front.exit_on_eof,
        send_only: front.send_only,
        recv_only: front.recv_only,
        crlf: front.crlf,
        quit_after: front.quit_after,
        progress: front.progress,
    };
    crate::pipe::run(role, opts).await
}

async fn tui(global: &GlobalArgs, initial: Option<Command>, mut commands: Vec<String>) -> u8 {
    // `--profile NAME` runs first, as a start-up line.
    if let Some(name) = &global.profile {
        commands.insert(
            0,
            format!("profile {}", crate::lang::words::join(std::slice::from_ref(name))),
        );
    }
    crate::tui::run(TuiOptions {
        initial,
        commands,
        keymap: global.keymap.clone(),
        sequences: global.sequences.clone(),
        record_dir: global.record.clone(),
        transcript_format: global.transcript_format(),
        scrollback_lines: global.scrollback_lines(),
        replay: None,
        lua_exec: global.lua_exec,
    })
    .await
}

/// `muxcat demo`: an echo server (plain tokio, not a muxcat session) and
/// muxcat sessions talking to it, so a newcomer sees something at once.
async fn demo(global: &GlobalArgs) -> u8 {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("muxcat: demo: cannot start the echo server: {e}");
            return 1;
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let commands = vec![
        format!("connect --label echo 127.0.0.1:{port}"),
        "send hello from muxcat".to_string(),
        "send 'a line with a tab\\there and an escape \\x1b[2J shown safely'".to_string(),
        format!("connect --label echo-hex --mode binary 127.0.0.1:{port}"),
        "send --hex de ad be ef 00 01 02 03 48 65 6c 6c 6f 0d 0a".to_string(),
        "view echo-hex hex".to_string(),
        "listen --label demo-listener 127.0.0.1:0".to_string(),
    ];
    tui(global, None, commands).await
}

/// `replay FILE [--raw in|out|c2s|s2c]`.
fn replay(
    rt: &tokio::runtime::Runtime,
    path: &std::path::Path,
    raw: Option<&str>,
    global: &GlobalArgs,
) -> u8 {
    let mark = match raw {
        None => None,
        Some("in" | "c2s") => Some(Mark::In),
        Some("out" | "s2c") => Some(Mark::Out),
        Some(other) => {
            eprintln!("muxcat: --raw takes in, out, c2s or s2c, not {other:?}");
            return 2;
        }
    };
    let name = path.display().to_string();
    let reader = match std::fs::File::open(path)
        .map_err(|e| format!("cannot read {name}: {e}"))
        .and_then(|f| transcript::Reader::new(std::io::BufReader::new(f), &name))
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("muxcat: {e}");
            return 1;
        }
    };
    // On a terminal: the transcript in the TUI, read-only (CONTRACT 1).
    if mark.is_none() && std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
        let opts = TuiOptions {
            initial: None,
            commands: Vec::new(),
            keymap: global.keymap.clone(),
            sequences: global.sequences.clone(),
            record_dir: None,
            transcript_format: global.transcript_format(),
            scrollback_lines: global.scrollback_lines(),
            replay: Some(crate::tui::ReplayFile { name, reader }),
            lua_exec: false,
        };
        return rt.block_on(crate::tui::run(opts));
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match write_replay(&mut out, reader, mark).and_then(|bad| out.flush().map(|()| bad)) {
        Ok(Some(e)) => {
            eprintln!("muxcat: {e}");
            1
        }
        Ok(None) => 0,
        Err(_) => 1,
    }
}

/// Streams a transcript out: its readable form (time of day, mark, bytes
/// shown safely), or with `mark` the decoded bytes of that direction. A
/// file of any size, in bounded memory. Returns the bad line's error.
fn write_replay<R: std::io::BufRead>(
    out: &mut impl Write,
    reader: transcript::Reader<R>,
    mark: Option<Mark>,
) -> std::io::Result<Option<String>> {
    if mark.is_none() {
        // The header is the file's text too: shown escaped like the data.
        writeln!(
            out,
            "{}",
            crate::core::escape::escape_display(reader.header.as_bytes())
        )?;
    }
    for entry in reader {
        let e = match entry {
            Ok(e) => e,
            Err(bad) => return Ok(Some(bad)),
        };
        match mark {
            Some(m) if e.mark == m => out.write_all(&e.data)?,
            Some(_) => {}
            None => {
                let time = e.at.get(11..26).unwrap_or(&e.at);
                let shown = crate::core::escape::escape_display(&e.data);
                writeln!(out, "{time} {} {shown}", e.mark.symbol())?;
            }
        }
    }
    Ok(None)
}

async fn run_script(
    file: Option<String>,
    global: &GlobalArgs,
    keep_going: bool,
    stay: bool,
    lua: bool,
) -> u8 {
    let opts = RunOptions {
        json: global.json,
        keep_going,
        stay,
        record_dir: global.record.clone(),
        transcript_format: global.transcript_format(),
        lua_exec: global.lua_exec,
        lua_file: None,
    };
    let stdout = std::io::stdout();
    // A Lua file runs as `source FILE` does: the one executor picks Lua.
    if let Some(path) = file.as_deref().filter(|p| *p != "-")
        && (lua || crate::lua::is_lua(std::path::Path::new(path)))
    {
        let opts = RunOptions {
            lua_file: Some(path.into()),
            ..opts
        };
        return script::run(tokio::io::empty(), stdout, opts).await;
    }
    if lua {
        eprintln!("muxcat: run --lua needs a script file");
        return 2;
    }
    match file.as_deref() {
        None | Some("-") => {
            let input = tokio::io::BufReader::new(tokio::io::stdin());
            script::run(input, stdout, opts).await
        }
        Some(path) => match tokio::fs::File::open(path).await {
            Ok(f) => script::run(tokio::io::BufReader::new(f), stdout, opts).await,
            Err(e) => {
                eprintln!("muxcat: cannot read script {path}: {e}");
                2
            }
        },
    }
}
