//! `highlight REGEX [COLOUR]`: colouring rules for every session and view.
//! The line view matches the text as it is shown (escaped), the hex view
//! the bytes; a match colours its characters, or its bytes' hex digits
//! and gutter characters.

use std::str::FromStr;

use ratatui::style::Color;

/// Colours of rules given none, in turn.
const PALETTE: [Color; 6] = [
    Color::Yellow,
    Color::Cyan,
    Color::Magenta,
    Color::Green,
    Color::LightRed,
    Color::LightBlue,
];

/// Bytes either side of a hex row that its matches are looked for in: a
/// match longer than this across rows is coloured only in part.
const HEX_CONTEXT: usize = 256;

#[derive(Debug)]
pub struct Highlight {
    pub id: String,
    pub pattern: String,
    pub colour_name: String,
    pub colour: Color,
    text: regex::Regex,
    bytes: regex::bytes::Regex,
}

#[derive(Debug, Default)]
pub struct Highlights {
    pub rules: Vec<Highlight>,
    next: u64,
}

impl Highlights {
    /// Adds a rule; its id.
    pub fn add(&mut self, pattern: &str, colour: Option<&str>) -> Result<String, String> {
        let text = regex::Regex::new(pattern).map_err(|e| format!("highlight: {e}"))?;
        let bytes = regex::bytes::Regex::new(pattern).map_err(|e| format!("highlight: {e}"))?;
        let (colour_name, colour) = match colour {
            Some(name) => (name.to_string(), parse_colour(name)?),
            None => {
                let c = PALETTE[self.rules.len() % PALETTE.len()];
                (colour_label(c), c)
            }
        };
        self.next += 1;
        let id = format!("hl-{}", self.next);
        self.rules.push(Highlight {
            id: id.clone(),
            pattern: pattern.to_string(),
            colour_name,
            colour,
            text,
            bytes,
        });
        Ok(id)
    }

    /// Removes a rule by id, or every rule (`all`); how many went.
    pub fn remove(&mut self, id: &str) -> Result<usize, String> {
        let before = self.rules.len();
        if id == "all" {
            self.rules.clear();
        } else {
            self.rules.retain(|r| r.id != id);
        }
        match before - self.rules.len() {
            0 if id != "all" => Err(format!(
                "highlight --rm: there is no rule {id:?} (see `highlights`)"
            )),
            n => Ok(n),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// `highlights`: one line per rule.
    pub fn listing(&self) -> String {
        let mut out = format!("highlights ({})", self.rules.len());
        for r in &self.rules {
            out.push_str(&format!(
                "\n  {} /{}/ {}",
                r.id,
                crate::core::escape::escape_display(r.pattern.as_bytes()),
                r.colour_name
            ));
        }
        out
    }

    /// The colour of each byte of `text` (shown text), None where no rule
    /// matches; later rules win where they overlap.
    pub fn in_text(&self, text: &str) -> Vec<Option<Color>> {
        let mut colours = vec![None; text.len()];
        for r in &self.rules {
            for m in r.text.find_iter(text) {
                colours[m.range()].fill(Some(r.colour));
            }
        }
        colours
    }

    /// The colour of each byte of `data[range]` (a hex row), matching in
    /// the bytes around it too.
    pub fn in_bytes(&self, data: &[u8], range: std::ops::Range<usize>) -> Vec<Option<Color>> {
        let mut colours = vec![None; range.len()];
        let from = range.start.saturating_sub(HEX_CONTEXT);
        let to = (range.end + HEX_CONTEXT).min(data.len());
        for r in &self.rules {
            for m in r.bytes.find_iter(&data[from..to]) {
                let (start, end) = (from + m.start(), from + m.end());
                for at in start.max(range.start)..end.min(range.end) {
                    colours[at - range.start] = Some(r.colour);
                }
            }
        }
        colours
    }
}

/// A colour name the language accepts (`light-red`, `#ff8800`).
fn parse_colour(name: &str) -> Result<Color, String> {
    if !crate::lang::valid_colour(name) {
        return Err(format!("highlight: {name:?} is not a colour"));
    }
    Color::from_str(name).map_err(|_| format!("highlight: {name:?} is not a colour"))
}

fn colour_label(c: Color) -> String {
    match c {
        Color::LightRed => "light-red".into(),
        Color::LightBlue => "light-blue".into(),
        other => other.to_string().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_colour_the_language_accepts_is_one_ratatui_knows() {
        for name in crate::lang::COLOURS {
            assert!(parse_colour(name).is_ok(), "{name}");
        }
        assert_eq!(parse_colour("#ff8800"), Ok(Color::Rgb(0xff, 0x88, 0)));
        assert!(parse_colour("mauve").is_err());
    }

    #[test]
    fn rules_colour_matches_in_text_and_bytes_and_are_removed_by_id() {
        let mut h = Highlights::default();
        let a = h.add("ERR", Some("red")).unwrap();
        let b = h.add(r"\d+", None).unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("hl-1", "hl-2"));
        let c = h.in_text("ERR 42");
        assert_eq!(c[0], Some(Color::Red));
        assert_eq!(c[3], None);
        assert_eq!(c[4], Some(Color::Cyan));
        // A match that starts in the row before still colours this row.
        let data = b"xxxxxxxxxxxxxxERR!";
        let c = h.in_bytes(data, 16..18);
        assert_eq!(c, [Some(Color::Red), None]);
        assert!(h.listing().contains("hl-2 /\\\\d+/ cyan"), "{}", h.listing());
        assert!(h.remove("hl-9").is_err());
        assert_eq!(h.remove("hl-1"), Ok(1));
        assert_eq!(h.remove("all"), Ok(1));
        assert!(h.is_empty());
    }
}
