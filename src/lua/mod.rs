//! Lua scripts over the session manager: `run x.lua`, `source x.lua`,
//! `lua CHUNK`. The `mux` API (`prelude.lua`) calls the raw functions
//! made here, and every one of them goes through the one executor: an
//! opening call is a command-language line built from its options table
//! and parsed by the one parser, a send or a wait a core command. So Lua
//! sessions show in the TUI, `run` output and transcripts like any other.
//!
//! While a script waits (`expect`, `sleep`, `accept`, `serve`) the
//! matches of its computed triggers (`mux.on`) and its timers
//! (`mux.every`) run their functions. A script that loops without waiting
//! is stopped by an instruction-count hook once its run is cancelled
//! (Ctrl-C in the TUI).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use mlua::{Function, HookTriggers, IntoLuaMulti, Lua, MultiValue, Table, Value, VmState};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::core::trigger::TriggerHit;
use crate::core::{Command, CoreError, ErrorCode, Event, EventKind, Outcome};
use crate::exec::{Executor, Script, Step};

const PRELUDE: &str = include_str!("prelude.lua");
/// How often a running script checks whether it was stopped.
const HOOK_EVERY: u32 = 10_000;
/// The chunk name mlua gives the Lua wrapper of every async function.
const ASYNC_WRAPPER: &str = "=__mlua_async_poll";
/// What one script's Lua state may allocate.
const LUA_MEMORY: usize = 256 << 20;
/// Matches of computed triggers waiting for the script, at most.
const HIT_QUEUE: usize = 256;

/// Whether a file is a Lua script (by its extension).
pub fn is_lua(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("lua"))
}

/// What a run shares with its functions (the Lua state's app data).
struct Run {
    executor: Executor,
    stop: CancellationToken,
    depth: usize,
    hits_tx: mpsc::Sender<TriggerHit>,
    hits: tokio::sync::Mutex<mpsc::Receiver<TriggerHit>>,
    /// `mux.every`: id, period, next time.
    timers: Mutex<Vec<(u64, Duration, Instant)>>,
    next_timer: std::sync::atomic::AtomicU64,
    /// The computed triggers this run armed (disarmed when it ends).
    triggers: Mutex<Vec<String>>,
    /// The prelude's dispatchers: a trigger hit, a timer.
    dispatch: Mutex<Option<(Function, Function)>>,
}

fn run_of(lua: &Lua) -> mlua::Result<Arc<Run>> {
    lua.app_data_ref::<Arc<Run>>()
        .map(|r| r.clone())
        .ok_or_else(|| mlua::Error::runtime("muxcat: the script's run is gone"))
}

fn stopped() -> mlua::Error {
    mlua::Error::runtime("stopped (Ctrl-C)")
}

/// A failure as the raw functions answer it: `false, code, text`.
fn failure(lua: &Lua, e: &CoreError) -> mlua::Result<MultiValue> {
    (false, e.code.as_str(), e.text.clone()).into_lua_multi(lua)
}

fn invalid(text: impl Into<String>) -> CoreError {
    CoreError::new(ErrorCode::CommandInvalid, text)
}

/// A duration from Lua: seconds as a number, or `500ms`-style text.
fn duration(value: &Value) -> Result<Option<Duration>, CoreError> {
    match value {
        Value::Nil => Ok(None),
        Value::Integer(n) if *n >= 0 => Ok(Some(Duration::from_secs(*n as u64))),
        Value::Number(n) if n.is_infinite() && *n > 0.0 => Ok(None),
        Value::Number(n) if *n >= 0.0 && *n < 1e9 => Ok(Some(Duration::from_secs_f64(*n))),
        Value::String(s) => crate::lang::parse_duration(&s.to_string_lossy())
            .map(Some)
            .map_err(invalid),
        other => Err(invalid(format!(
            "a duration is seconds (a number) or text like \"500ms\", not {}",
            other.type_name()
        ))),
    }
}

impl Run {
    /// Runs `fut` while dispatching trigger hits and timers; a wait inside
    /// a dispatched function just waits (no nesting).
    async fn waiting<T>(&self, lua: &Lua, fut: impl std::future::Future<Output = T>) -> mlua::Result<T> {
        tokio::pin!(fut);
        let Ok(mut hits) = self.hits.try_lock() else {
            return tokio::select! {
                r = &mut fut => Ok(r),
                _ = self.stop.cancelled() => Err(stopped()),
            };
        };
        loop {
            let next = self
                .timers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|t| t.2)
                .min();
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => return Err(stopped()),
                r = &mut fut => return Ok(r),
                Some(hit) = hits.recv() => {
                    let dispatch = self.dispatch.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    if let Some((on_hit, _)) = dispatch {
                        let data = lua.create_string(&hit.data)?;
                        on_hit.call_async::<()>((hit.trigger, hit.session, data)).await?;
                    }
                }
                _ = async { match next { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {
                    let due: Vec<u64> = {
                        let mut timers = self.timers.lock().unwrap_or_else(|e| e.into_inner());
                        let now = Instant::now();
                        timers
                            .iter_mut()
                            .filter(|t| t.2 <= now)
                            .map(|t| {
                                t.2 = now + t.1;
                                t.0
                            })
                            .collect()
                    };
                    let dispatch = self.dispatch.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    if let Some((_, on_timer)) = dispatch {
                        for id in due {
                            on_timer.call_async::<()>(id).await?;
                        }
                    }
                }
            }
        }
    }

    /// One command-language line through the executor.
    async fn line(&self, lua: &Lua, text: &str, depth: usize) -> mlua::Result<Result<Outcome, CoreError>> {
        let mut script = Script::default();
        let step = self
            .waiting(
                lua,
                self.executor.run_line(text.as_bytes(), "lua", &mut script, depth),
            )
            .await?;
        step_result(step)
    }

    /// One core command through the executor.
    async fn command(&self, lua: &Lua, cmd: Command) -> mlua::Result<Result<Outcome, CoreError>> {
        let mut script = Script::default();
        let step = self
            .waiting(lua, self.executor.run_command(cmd, &mut script))
            .await?;
        step_result(step)
    }
}

fn step_result(step: Step) -> mlua::Result<Result<Outcome, CoreError>> {
    match step {
        Step::Done(outcome) => Ok(Ok(outcome.unwrap_or(Outcome::Done))),
        Step::Failed(e) => Ok(Err(e)),
        Step::Quit => Ok(Err(invalid("quit: a Lua script ends by returning (or error())"))),
        Step::Stopped { .. } => Err(stopped()),
    }
}

/// `connect` + `{ label = "x", reconnect = true }` + target: the words of
/// the command line the one parser reads.
fn words(command: &str, target: Option<String>, opts: Option<Table>) -> mlua::Result<Vec<String>> {
    let mut out = vec![command.to_string()];
    if let Some(opts) = opts {
        let mut pairs: Vec<(String, Value)> = opts.pairs::<String, Value>().collect::<mlua::Result<_>>()?;
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, value) in pairs {
            let flag = format!("--{}", key.replace('_', "-"));
            match value {
                Value::Boolean(true) => out.push(flag),
                Value::Boolean(false) | Value::Nil => {}
                Value::Table(list) => {
                    for v in list.sequence_values::<Value>() {
                        out.push(flag.clone());
                        out.push(word(&v?)?);
                    }
                }
                v => {
                    out.push(flag);
                    out.push(word(&v)?);
                }
            }
        }
    }
    out.extend(target);
    Ok(out)
}

fn word(v: &Value) -> mlua::Result<String> {
    match v {
        Value::String(s) => Ok(s.to_str()?.to_string()),
        Value::Integer(n) => Ok(n.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Boolean(b) => Ok(b.to_string()),
        other => Err(mlua::Error::runtime(format!(
            "an option's value is text, a number or true, not {}",
            other.type_name()
        ))),
    }
}

/// The raw functions the prelude builds `mux` from.
fn raw_api(lua: &Lua) -> mlua::Result<Table> {
    let raw = lua.create_table()?;
    raw.set(
        "words",
        lua.create_function(
            |_, (command, target, opts): (String, Option<String>, Option<Table>)| {
                words(&command, target, opts)
            },
        )?,
    )?;
    raw.set(
        "open",
        lua.create_async_function(|lua, words: Vec<String>| async move {
            let run = run_of(&lua)?;
            let line = crate::lang::words::join(&words);
            match run.line(&lua, &line, 0).await? {
                Ok(Outcome::Session(id)) => (true, "session", id).into_lua_multi(&lua),
                Ok(Outcome::Listener(id)) => (true, "listener", id).into_lua_multi(&lua),
                Ok(other) => failure(&lua, &invalid(format!("{line}: opened nothing ({other:?})"))),
                Err(e) => failure(&lua, &e),
            }
        })?,
    )?;
    raw.set(
        "command",
        lua.create_async_function(|lua, words: Vec<String>| async move {
            let run = run_of(&lua)?;
            match run.line(&lua, &crate::lang::words::join(&words), 0).await? {
                Ok(_) => true.into_lua_multi(&lua),
                Err(e) => failure(&lua, &e),
            }
        })?,
    )?;
    raw.set(
        "line",
        lua.create_async_function(|lua, text: String| async move {
            let run = run_of(&lua)?;
            match run.line(&lua, &text, run.depth + 1).await? {
                Ok(_) => true.into_lua_multi(&lua),
                Err(e) => failure(&lua, &e),
            }
        })?,
    )?;
    raw.set(
        "send",
        lua.create_async_function(
            |lua, (id, data, raw): (String, mlua::LuaString, bool)| async move {
                let run = run_of(&lua)?;
                let cmd = Command::Send {
                    to: Some(id),
                    payload: Bytes::copy_from_slice(&data.as_bytes()),
                    raw,
                };
                match run.command(&lua, cmd).await? {
                    Ok(_) => true.into_lua_multi(&lua),
                    Err(e) => failure(&lua, &e),
                }
            },
        )?,
    )?;
    raw.set(
        "sendhex",
        lua.create_async_function(|lua, (id, hex): (String, String)| async move {
            let run = run_of(&lua)?;
            let payload = match crate::lang::decode_hex(&hex) {
                Ok(p) => p,
                Err(e) => return failure(&lua, &e),
            };
            let cmd = Command::Send {
                to: Some(id),
                payload: Bytes::from(payload),
                raw: true,
            };
            match run.command(&lua, cmd).await? {
                Ok(_) => true.into_lua_multi(&lua),
                Err(e) => failure(&lua, &e),
            }
        })?,
    )?;
    raw.set(
        "expect",
        lua.create_async_function(
            |lua, (id, patterns, timeout, partial, fresh): (String, Vec<String>, Value, bool, bool)| async move {
                let run = run_of(&lua)?;
                expect(&lua, &run, id, patterns, timeout, partial, fresh).await
            },
        )?,
    )?;
    raw.set(
        "sleep",
        lua.create_async_function(|lua, length: Value| async move {
            let run = run_of(&lua)?;
            let length = match duration(&length) {
                Ok(d) => d,
                Err(e) => return failure(&lua, &e),
            };
            let wait = async {
                match length {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            run.waiting(&lua, wait).await?;
            true.into_lua_multi(&lua)
        })?,
    )?;
    raw.set(
        "sessions",
        lua.create_async_function(|lua, ()| async move {
            let run = run_of(&lua)?;
            match run.command(&lua, Command::Sessions).await? {
                Ok(Outcome::Sessions(list)) => {
                    let out = lua.create_table()?;
                    for s in list {
                        let t = lua.create_table()?;
                        t.set("id", s.session_id)?;
                        t.set("label", s.label)?;
                        t.set("peer", s.peer)?;
                        t.set("state", s.state)?;
                        t.set("kind", s.kind)?;
                        t.set("mode", s.mode)?;
                        t.set("bytesIn", s.bytes_in)?;
                        t.set("bytesOut", s.bytes_out)?;
                        out.push(t)?;
                    }
                    (true, out).into_lua_multi(&lua)
                }
                Ok(_) => lua.create_table().and_then(|t| (true, t).into_lua_multi(&lua)),
                Err(e) => failure(&lua, &e),
            }
        })?,
    )?;
    raw.set(
        "log",
        lua.create_async_function(|lua, text: String| async move {
            let run = run_of(&lua)?;
            run.executor
                .manager()
                .emit(Event::new(EventKind::Info(text)))
                .await;
            true.into_lua_multi(&lua)
        })?,
    )?;
    raw.set(
        "on",
        lua.create_async_function(
            |lua, (on, pattern, once): (Option<String>, String, bool)| async move {
                let run = run_of(&lua)?;
                let regex = match regex::bytes::Regex::new(&pattern) {
                    Ok(r) => r,
                    Err(e) => {
                        let e = CoreError::new(ErrorCode::RegexInvalid, format!("mux.on /{pattern}/: {e}"));
                        return failure(&lua, &e);
                    }
                };
                let spec = crate::core::command::TriggerSpec {
                    on,
                    regex,
                    reply: Bytes::new(),
                    raw: false,
                    once,
                    checksum: None,
                    notify: Some(run.hits_tx.clone()),
                    sample: false,
                    dir: None,
                    rewrite: false,
                };
                match run.command(&lua, Command::On(spec)).await? {
                    Ok(Outcome::Trigger(id)) => {
                        run.triggers
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(id.clone());
                        (true, id).into_lua_multi(&lua)
                    }
                    Ok(other) => failure(&lua, &invalid(format!("mux.on: armed nothing ({other:?})"))),
                    Err(e) => failure(&lua, &e),
                }
            },
        )?,
    )?;
    raw.set(
        "every",
        lua.create_function(|lua, length: Value| {
            let run = run_of(lua)?;
            let period = match duration(&length) {
                Ok(Some(d)) if d >= Duration::from_millis(1) => d,
                Ok(_) => return failure(lua, &invalid("mux.every: the period must be at least 1ms")),
                Err(e) => return failure(lua, &e),
            };
            let id = run.next_timer.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            run.timers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((id, period, Instant::now() + period));
            (true, id).into_lua_multi(lua)
        })?,
    )?;
    raw.set(
        "hex",
        lua.create_function(|_, data: mlua::LuaString| Ok(hex::encode(&*data.as_bytes())))?,
    )?;
    raw.set(
        "unhex",
        lua.create_function(|lua, text: String| match crate::lang::decode_hex(&text) {
            Ok(bytes) => (true, lua.create_string(&bytes)?).into_lua_multi(lua),
            Err(e) => failure(lua, &e),
        })?,
    )?;
    raw.set(
        "crc",
        lua.create_function(|lua, (name, data): (String, mlua::LuaString)| {
            match crate::core::checksum::Checksum::parse(&name) {
                Ok(sum) => {
                    let data = data.as_bytes();
                    (true, lua.create_string(sum.bytes(&data))?, sum.value(&data)).into_lua_multi(lua)
                }
                Err(e) => failure(
                    lua,
                    &CoreError::new(ErrorCode::PayloadInvalid, format!("mux.crc: {e}")),
                ),
            }
        })?,
    )?;
    raw.set(
        "captures",
        lua.create_function(|lua, (pattern, data): (String, mlua::LuaString)| {
            captures(lua, &pattern, &data.as_bytes())
        })?,
    )?;
    raw.set(
        "duration_word",
        lua.create_function(|_, length: Value| match duration(&length) {
            Ok(Some(d)) => Ok(format!("{}ms", d.as_millis())),
            Ok(None) => Err(mlua::Error::runtime("a length must be finite")),
            Err(e) => Err(mlua::Error::runtime(e.text)),
        })?,
    )?;
    Ok(raw)
}

/// `m[0]` the whole match, `m[1]`… the groups, `m.name` named ones,
/// `m.line` the line (or chunk) it was found in.
fn captures(lua: &Lua, pattern: &str, data: &[u8]) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("line", lua.create_string(data)?)?;
    let Ok(re) = regex::bytes::Regex::new(pattern) else {
        return Ok(t);
    };
    let Some(caps) = re.captures(data) else {
        t.set(0, lua.create_string(data)?)?;
        return Ok(t);
    };
    for (i, group) in caps.iter().enumerate() {
        if let Some(g) = group {
            t.set(i, lua.create_string(g.as_bytes())?)?;
        }
    }
    for name in re.capture_names().flatten() {
        if let Some(g) = caps.name(name) {
            t.set(name, lua.create_string(g.as_bytes())?)?;
        }
    }
    Ok(t)
}

/// `s:expect(patterns, timeout, opts)`: index, match and captures of the
/// first pattern that matches; `nil, "timeout"` on expiry.
async fn expect(
    lua: &Lua,
    run: &Run,
    id: String,
    patterns: Vec<String>,
    timeout: Value,
    partial: bool,
    fresh: bool,
) -> mlua::Result<MultiValue> {
    if patterns.is_empty() {
        return failure(lua, &invalid("expect: no pattern"));
    }
    let mut each = Vec::new();
    for p in &patterns {
        match regex::bytes::Regex::new(p) {
            Ok(r) => each.push(r),
            Err(e) => {
                let e = CoreError::new(ErrorCode::RegexInvalid, format!("expect /{p}/: {e}"));
                return failure(lua, &e);
            }
        }
    }
    let either = patterns
        .iter()
        .map(|p| format!("(?:{p})"))
        .collect::<Vec<_>>()
        .join("|");
    let regex = match regex::bytes::Regex::new(&either) {
        Ok(r) => r,
        Err(e) => return failure(lua, &CoreError::new(ErrorCode::RegexInvalid, e.to_string())),
    };
    let timeout = match duration(&timeout) {
        Ok(d) => d.unwrap_or(Duration::from_secs(10)),
        Err(e) => return failure(lua, &e),
    };
    let cmd = Command::WaitFor {
        on: Some(id),
        timeout,
        regex,
        opts: crate::core::session::WaitOptions { partial, fresh },
    };
    match run.command(lua, cmd).await? {
        Ok(Outcome::Matched { raw, .. }) => {
            let index = each.iter().position(|r| r.is_match(&raw)).unwrap_or(0);
            let caps = captures(lua, patterns[index].as_str(), &raw)?;
            let whole: Value = caps.get(0)?;
            (true, index + 1, whole, caps).into_lua_multi(lua)
        }
        Ok(other) => failure(lua, &invalid(format!("expect: matched nothing ({other:?})"))),
        Err(e) if e.code == ErrorCode::WaitforTimeout => (true, Value::Nil, "timeout").into_lua_multi(lua),
        Err(e) => failure(lua, &e),
    }
}

/// Standard libraries minus what runs programs (unless `allow_exec`) and
/// `os.exit` (a script must not end muxcat, its TUI or other sessions).
fn sandbox(lua: &Lua, allow_exec: bool) -> mlua::Result<()> {
    let globals = lua.globals();
    let os: Table = globals.get("os")?;
    os.set(
        "exit",
        lua.create_function(|_, ()| -> mlua::Result<()> {
            Err(mlua::Error::runtime(
                "os.exit is not allowed: a script ends by returning",
            ))
        })?,
    )?;
    if !allow_exec {
        let refuse = |name: &'static str| {
            lua.create_function(move |_, ()| -> mlua::Result<()> {
                Err(mlua::Error::runtime(format!(
                    "{name} is off: muxcat --lua-exec allows running programs from scripts"
                )))
            })
        };
        os.set("execute", refuse("os.execute")?)?;
        let io: Table = globals.get("io")?;
        io.set("popen", refuse("io.popen")?)?;
    }
    Ok(())
}

/// The uncaught error of a script, as an error event's code and text:
/// a muxcat error keeps its code (`file:line: CODE: text`), anything else
/// is `LUA_ERROR` with Lua's own `file:line: message`.
fn script_error(e: &mlua::Error) -> CoreError {
    let text = match e {
        mlua::Error::RuntimeError(msg) | mlua::Error::SyntaxError { message: msg, .. } => msg.clone(),
        // A function's error: its cause says what happened.
        mlua::Error::CallbackError { cause, .. } => return script_error(cause),
        other => other.to_string(),
    };
    let text = text
        .split("\nstack traceback:")
        .next()
        .unwrap_or(&text)
        .trim()
        .to_string();
    // `file:line: CODE: text` is a muxcat error the script did not catch:
    // its code, and `file:line: text`.
    let mut parts = text.splitn(3, ": ");
    if let (Some(place), Some(code), Some(rest)) = (parts.next(), parts.next(), parts.next())
        && let Some(code) = ErrorCode::parse(code)
    {
        return CoreError::new(code, format!("{place}: {rest}"));
    }
    CoreError::new(ErrorCode::LuaError, text)
}

/// Runs a chunk of Lua named `name` (`file.lua`, or `lua` for the bar).
pub async fn run(executor: &Executor, source: &[u8], name: &str, script: &Script, depth: usize) -> Step {
    let stop = script.stop.clone().unwrap_or_default();
    let (hits_tx, hits) = mpsc::channel(HIT_QUEUE);
    let run = Arc::new(Run {
        executor: executor.clone(),
        stop: stop.clone(),
        depth,
        hits_tx,
        hits: tokio::sync::Mutex::new(hits),
        timers: Mutex::new(Vec::new()),
        next_timer: std::sync::atomic::AtomicU64::new(1),
        triggers: Mutex::new(Vec::new()),
        dispatch: Mutex::new(None),
    });
    let result = execute(&run, source, name, executor.lua_exec(), stop).await;
    // Its computed triggers end with it.
    let armed = std::mem::take(&mut *run.triggers.lock().unwrap_or_else(|e| e.into_inner()));
    for id in armed {
        let _ = executor.manager().execute(Command::Off { id }).await;
    }
    match result {
        Ok(()) => Step::Done(None),
        Err(e) if e.to_string().contains("stopped (Ctrl-C)") => Step::Stopped { at: name.to_string() },
        Err(e) => {
            let err = script_error(&e);
            executor.manager().emit(Event::error(err.clone())).await;
            Step::Failed(err)
        }
    }
}

async fn execute(
    run: &Arc<Run>,
    source: &[u8],
    name: &str,
    allow_exec: bool,
    stop: CancellationToken,
) -> mlua::Result<()> {
    let lua = Lua::new();
    // A script that piles up data fails with "not enough memory", not muxcat.
    lua.set_memory_limit(LUA_MEMORY)?;
    sandbox(&lua, allow_exec)?;
    // Every so many instructions: stopped, or let the runtime run other
    // tasks (a loop that never waits must not starve the TUI or the
    // sessions sharing its thread; the script goes on at once after).
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(HOOK_EVERY),
        move |_, at| {
            if stop.is_cancelled() {
                Err(stopped())
            } else if at.source().source.as_deref() == Some(ASYNC_WRAPPER) {
                // Never inside mlua's wrapper of an async function: yielding
                // between its poll of a pending future and its own yield
                // loses that future's wake-up (the wake lands on the
                // hook's re-poll, which resumes Lua and yields "pending"
                // without polling the future again), and the script
                // waits forever. The wrapper yields or returns at once.
                Ok(VmState::Continue)
            } else {
                Ok(VmState::Yield)
            }
        },
    )?;
    lua.set_app_data(run.clone());
    let raw = raw_api(&lua)?;
    let dispatch: (Function, Function) = lua.load(PRELUDE).set_name("=muxcat").call(raw)?;
    *run.dispatch.lock().unwrap_or_else(|e| e.into_inner()) = Some(dispatch);
    let chunk = lua.load(source).set_name(format!("@{name}"));
    let result = chunk.exec_async().await;
    // The functions hold the state; let it go.
    run.dispatch.lock().unwrap_or_else(|e| e.into_inner()).take();
    result
}
