//! Word splitting for the command language: POSIX-shell-like quotes, `#`
//! comments, and backslashes kept for the command.
//!
//! Why not the `shell-words` crate: a POSIX shell eats the backslash of an
//! unquoted `\r`, so `send AT\r` would send `ATr`. Here a backslash only
//! escapes whitespace, a quote or `#`; everywhere else it is passed on, so
//! payload escapes (`\r`, `\x41`) and regex classes (`\d`) reach the command
//! whether quoted or not.

/// Joins words into a line that [`split`] gives back the same words
/// (`repeat` keeps its command as a line).
pub fn join(words: &[String]) -> String {
    let quoted: Vec<String> = words
        .iter()
        .map(|w| {
            let plain = !w.is_empty()
                && !w
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '\'' | '"' | '#'));
            if plain {
                w.clone()
            } else if !w.contains('\'') {
                format!("'{w}'")
            } else {
                format!("\"{}\"", w.replace('"', "\\\""))
            }
        })
        .collect();
    quoted.join(" ")
}

/// Splits a line into words; `Ok(vec![])` for blank and comment lines.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '#' if !in_word => break,
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("missing closing ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') if chars.peek() == Some(&'"') => {
                            word.push('"');
                            chars.next();
                        }
                        Some(c) => word.push(c),
                        None => return Err("missing closing \" quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.peek() {
                    Some(&n) if n.is_whitespace() || n == '\'' || n == '"' || n == '#' => {
                        word.push(n);
                        chars.next();
                    }
                    _ => word.push('\\'),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(split("send hello world").unwrap(), vec!["send", "hello", "world"]);
        assert_eq!(split("send 'a b'  \"c d\"").unwrap(), vec!["send", "a b", "c d"]);
        assert_eq!(split("send a\\ b").unwrap(), vec!["send", "a b"]);
        assert_eq!(
            split("send \"say \\\"hi\\\"\"").unwrap(),
            vec!["send", "say \"hi\""]
        );
        assert_eq!(split("send ''").unwrap(), vec!["send", ""]);
    }

    #[test]
    fn comments_and_blanks() {
        assert!(split("   ").unwrap().is_empty());
        assert!(split("# a comment").unwrap().is_empty());
        assert_eq!(split("send hi # trailing").unwrap(), vec!["send", "hi"]);
        assert_eq!(
            split("send '#tag' a#b \\#c").unwrap(),
            vec!["send", "#tag", "a#b", "#c"]
        );
    }

    #[test]
    fn backslashes_reach_the_command() {
        assert_eq!(split(r"send AT\r").unwrap(), vec!["send", r"AT\r"]);
        assert_eq!(split(r"waitfor ^\d+$").unwrap(), vec!["waitfor", r"^\d+$"]);
        assert_eq!(split(r#"send "a\x41""#).unwrap(), vec!["send", r"a\x41"]);
    }

    #[test]
    fn unclosed_quotes_are_errors() {
        assert!(split("send 'oops").is_err());
        assert!(split("send \"oops").is_err());
    }
}
