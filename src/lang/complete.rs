//! What may be typed at a point of a command line, read from the parser's
//! own definition (value names, possible values), so completion never
//! drifts from the language: `send --to ` takes a session, `close ` a
//! listener, `off ` a trigger, `view ` a session or a view name.

use clap::CommandFactory;

/// What the word being typed can be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    /// A command name.
    Command,
    /// A long option of this command.
    Option(String),
    Session,
    Listener,
    /// A session or a listener.
    Reference,
    Trigger,
    /// One of these words, and (if set) a session before them.
    Values {
        words: Vec<String>,
        or_session: bool,
    },
    /// Free text (a payload, a regex, an address): nothing to offer.
    Free,
}

/// The slot of the word after `before` (the words already typed; `word`
/// is the start of the one being typed).
pub fn slot(before: &[&str], word: &str) -> Slot {
    let Some((&name, args)) = before.split_first() else {
        return Slot::Command;
    };
    let root = super::Line::command();
    let Some(cmd) = root.find_subcommand(name) else {
        return Slot::Free;
    };
    if word.starts_with('-') {
        return Slot::Option(name.to_string());
    }
    // The option whose value this is, or the positional it fills.
    if let Some(prev) = args.last().and_then(|w| w.strip_prefix("--"))
        && let Some(opt) = cmd.get_arguments().find(|a| a.get_long() == Some(prev))
        && opt.get_action().takes_values()
    {
        return from_value_name(opt);
    }
    let mut positional = 0;
    let mut skip_value = false;
    for w in args {
        if skip_value {
            skip_value = false;
        } else if let Some(long) = w.strip_prefix("--") {
            skip_value = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .is_some_and(|a| a.get_action().takes_values());
        } else {
            positional += 1;
        }
    }
    let positionals: Vec<&clap::Arg> = cmd.get_positionals().collect();
    // A positional of several values (`view [SESSION] line|hex`) takes
    // the later words too.
    let arg = positionals.get(positional).or_else(|| {
        positionals
            .last()
            .filter(|a| a.get_num_args().is_some_and(|n| n.max_values() > positional))
    });
    match arg {
        Some(arg) => {
            let slot = from_value_name(arg);
            // `view SESSION ` wants the view now, not another session.
            match slot {
                Slot::Values {
                    words,
                    or_session: true,
                } if positional > 0 => Slot::Values {
                    words,
                    or_session: false,
                },
                other => other,
            }
        }
        None => Slot::Free,
    }
}

fn from_value_name(arg: &clap::Arg) -> Slot {
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .map(|v| v.get_name().to_string())
        .collect();
    if !possible.is_empty() {
        return Slot::Values {
            words: possible,
            or_session: false,
        };
    }
    let name = arg
        .get_value_names()
        .and_then(|n| n.first())
        .map(|n| n.to_string())
        .unwrap_or_default();
    match name.as_str() {
        "SESSION" => Slot::Session,
        "LISTENER" => Slot::Listener,
        "SESSION|LISTENER" => Slot::Reference,
        "TRIGGER" => Slot::Trigger,
        _ => {
            // `[SESSION] line|hex`, `line|binary`: the lower-case words
            // are the values; `[SESSION]` offers sessions first.
            let or_session = name.starts_with("[SESSION]");
            let words: Vec<String> = name
                .trim_start_matches("[SESSION]")
                .split(['|', ' '])
                .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
                .map(str::to_string)
                .collect();
            if words.is_empty() {
                Slot::Free
            } else {
                Slot::Values { words, or_session }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(words: &[&str], or_session: bool) -> Slot {
        Slot::Values {
            words: words.iter().map(|w| w.to_string()).collect(),
            or_session,
        }
    }

    #[test]
    fn slots_come_from_the_parser() {
        assert_eq!(slot(&[], "s"), Slot::Command);
        assert_eq!(slot(&["connect"], "--"), Slot::Option("connect".into()));
        assert_eq!(slot(&["send", "--to"], "mo"), Slot::Session);
        assert_eq!(slot(&["send"], "AT"), Slot::Free);
        assert_eq!(slot(&["disconnect"], ""), Slot::Session);
        assert_eq!(slot(&["close"], ""), Slot::Listener);
        assert_eq!(slot(&["off"], "t"), Slot::Trigger);
        assert_eq!(slot(&["on", "--on"], ""), Slot::Reference);
        assert_eq!(
            slot(&["view"], ""),
            values(&["line", "hex", "hex-in", "hex-out"], true)
        );
        assert_eq!(
            slot(&["view", "dev"], "h"),
            values(&["line", "hex", "hex-in", "hex-out"], false)
        );
        assert_eq!(
            slot(&["connect", "--mode"], ""),
            values(&["line", "binary"], false)
        );
        assert_eq!(
            slot(&["connect", "--eol"], "c"),
            values(&["lf", "crlf", "cr"], false)
        );
        assert_eq!(slot(&["record"], ""), values(&["off"], true));
        assert_eq!(slot(&["connect", "--mode", "line"], "127"), Slot::Free);
        assert_eq!(slot(&["nosuch"], ""), Slot::Free);
    }
}
