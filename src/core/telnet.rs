//! Telnet's in-band commands (RFC 854/855): data separated from `IAC`
//! sequences, every option request answered once (no negotiation loops),
//! subnegotiations handed over. `--telnet` (ncat's `-t`) wants no option
//! and answers every request with a refusal; RFC 2217 (a serial port
//! server) wants binary, suppress-go-ahead and COM-PORT. A leaf module.

use bytes::BytesMut;

pub const IAC: u8 = 255;
pub const DONT: u8 = 254;
pub const DO: u8 = 253;
pub const WONT: u8 = 252;
pub const WILL: u8 = 251;
pub const SB: u8 = 250;
pub const SE: u8 = 240;
pub const BINARY: u8 = 0;
pub const SGA: u8 = 3;

/// A subnegotiation kept at most this long (a peer cannot grow it).
pub const SB_MAX: usize = 64;

/// A Telnet command, ready for the wire.
pub fn command(verb: u8, option: u8) -> Vec<u8> {
    vec![IAC, verb, option]
}

/// What the decoder found beside data.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// Bytes to send back (answers to the peer's negotiation).
    Reply(Vec<u8>),
    /// A subnegotiation: its option, then its bytes (IAC undoubled).
    Sub(Vec<u8>),
    /// The peer will not (or will not let us) use an option we want.
    Declined(u8),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Data,
    Iac,
    Verb(u8),
    Sub,
    SubIac,
}

/// A Telnet stream from the peer.
#[derive(Debug, Default)]
pub struct Decoder {
    state: State,
    sub: Vec<u8>,
    /// Options we agree to; any other request is refused.
    wanted: &'static [u8],
    /// Answers given, so a repeated request gets no second one.
    answered: std::collections::HashSet<(u8, u8)>,
}

impl Decoder {
    /// A decoder that agrees to `wanted` options (none: refuse all).
    pub fn wanting(wanted: &'static [u8]) -> Decoder {
        Decoder {
            wanted,
            ..Decoder::default()
        }
    }

    /// Bytes of a subnegotiation held (bounded by [`SB_MAX`]).
    pub fn held(&self) -> usize {
        self.sub.len()
    }

    /// Answers already given (in a greeting sent first).
    pub fn answered(&mut self, said: impl IntoIterator<Item = (u8, u8)>) {
        self.answered.extend(said);
    }

    /// Decodes `input`, appending data bytes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut BytesMut, found: &mut Vec<Found>) {
        let mut start = 0;
        for (i, &b) in input.iter().enumerate() {
            match self.state {
                State::Data => {
                    if b == IAC {
                        out.extend_from_slice(&input[start..i]);
                        self.state = State::Iac;
                        start = i + 1;
                    }
                    continue;
                }
                State::Iac => {
                    self.state = match b {
                        IAC => {
                            out.extend_from_slice(&[IAC]);
                            State::Data
                        }
                        WILL | WONT | DO | DONT => State::Verb(b),
                        SB => {
                            self.sub.clear();
                            State::Sub
                        }
                        // NOP, GA, data mark and the like: nothing to do.
                        _ => State::Data,
                    };
                }
                State::Verb(verb) => {
                    self.negotiate(verb, b, found);
                    self.state = State::Data;
                }
                State::Sub => {
                    if b == IAC {
                        self.state = State::SubIac;
                    } else if self.sub.len() < SB_MAX {
                        self.sub.push(b);
                    }
                }
                State::SubIac => {
                    self.state = match b {
                        SE => {
                            found.push(Found::Sub(std::mem::take(&mut self.sub)));
                            State::Data
                        }
                        IAC => {
                            if self.sub.len() < SB_MAX {
                                self.sub.push(IAC);
                            }
                            State::Sub
                        }
                        _ => State::Sub,
                    };
                }
            }
            start = i + 1;
        }
        if self.state == State::Data && start < input.len() {
            out.extend_from_slice(&input[start..]);
        }
    }

    fn negotiate(&mut self, verb: u8, option: u8, found: &mut Vec<Found>) {
        let wanted = self.wanted.contains(&option);
        let answer = match (verb, wanted) {
            (WILL, true) => DO,
            (WILL, false) => DONT,
            (DO, true) => WILL,
            (DO, false) => WONT,
            (DONT | WONT, true) => {
                found.push(Found::Declined(option));
                return;
            }
            (WONT, false) => DONT,
            _ => WONT,
        };
        // Say each thing once: a repeated request gets no answer.
        if self.answered.insert((answer, option)) {
            found.push(Found::Reply(command(answer, option)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusing_everything_strips_commands_and_answers_once_at_every_split() {
        // A telnetd's greeting: DO ECHO, WILL SGA, a subnegotiation, data
        // with a doubled 0xFF.
        let input = [
            &[IAC, DO, 1, IAC, WILL, SGA][..],
            &[IAC, SB, 24, 1, IAC, SE],
            b"login: \xff\xff!",
            &[IAC, DO, 1],
        ]
        .concat();
        for split in 0..=input.len() {
            let mut d = Decoder::wanting(&[]);
            let (mut out, mut found) = (BytesMut::new(), Vec::new());
            d.feed(&input[..split], &mut out, &mut found);
            d.feed(&input[split..], &mut out, &mut found);
            assert_eq!(&out[..], b"login: \xff!", "split {split}");
            assert_eq!(
                found,
                [
                    Found::Reply(command(WONT, 1)),
                    Found::Reply(command(DONT, SGA)),
                    Found::Sub(vec![24, 1]),
                ],
                "split {split}"
            );
        }
    }
}
