//! `muxcat export --pcapng OUT TRANSCRIPT…`: transcripts as a capture
//! Wireshark and tshark read. TCP and TLS sessions become synthetic
//! Ethernet/IP/TCP packets (a handshake, then each recorded chunk with
//! consistent sequence numbers, the recorded addresses and timestamps),
//! UDP sessions UDP datagrams, and anything else (serial ports, Unix
//! sockets) packets of a user link type with the direction flagged and
//! the transcript's header as the interface's description. Several
//! transcripts are merged in time order, one interface each.
//!
//! pcapng is a handful of blocks (section header, interface description,
//! enhanced packet); they are written here, little-endian.

use std::io::Write;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::Path;

use crate::transcript::{self, Mark};

const LINKTYPE_ETHERNET: u16 = 1;
/// LINKTYPE_USER0: bytes as they came, for links with no packet format.
const LINKTYPE_USER0: u16 = 147;
/// The largest TCP segment or UDP payload one packet carries.
const SEGMENT: usize = 16 * 1024;

/// One packet to write: when, on which interface, which way, the bytes.
struct Packet {
    micros: i64,
    interface: u32,
    /// EPB flags: 1 inbound (to muxcat), 2 outbound.
    direction: u32,
    data: Vec<u8>,
}

/// One transcript's interface.
struct Interface {
    link: u16,
    name: String,
    description: String,
}

/// What a transcript's header says.
struct Header {
    session: String,
    kind: String,
    from: Option<SocketAddr>,
    to: Option<SocketAddr>,
    /// muxcat accepted the session (`dir=in`): it is the `to` side.
    inbound: bool,
    text: String,
}

fn parse_header(line: &str) -> Result<Header, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() < 9 || words[7] != "->" {
        return Err(format!("{line:?} is not a transcript header"));
    }
    let addr = |w: &str| w.parse::<SocketAddr>().ok();
    Ok(Header {
        session: words[4].to_string(),
        kind: words[5].to_string(),
        from: addr(words[6]),
        to: addr(words[8]),
        inbound: words[9..].contains(&"dir=in"),
        text: transcript::Format::strip_header(line).to_string(),
    })
}

fn micros(at: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| t.timestamp_micros())
        .map_err(|e| format!("time {at:?}: {e}"))
}

/// The Internet checksum of `data` added to `sum`.
fn checksum(mut sum: u32, data: &[u8]) -> u16 {
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Both addresses in one family (IPv4 stays IPv4 unless the other is IPv6).
fn same_family(a: IpAddr, b: IpAddr) -> (IpAddr, IpAddr) {
    let six = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    };
    match (a, b) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => (a, b),
        _ => (six(a), six(b)),
    }
}

/// Ethernet + IP around a transport segment (`proto` 6 or 17), with the
/// transport checksum at `sum_at` filled in.
fn ip_frame(src: IpAddr, dst: IpAddr, proto: u8, mut segment: Vec<u8>, sum_at: usize, ip_id: u16) -> Vec<u8> {
    let (src, dst) = same_family(src, dst);
    let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    let len = segment.len() as u16;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut pseudo = Vec::with_capacity(12);
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, proto]);
            pseudo.extend_from_slice(&len.to_be_bytes());
            let sum = checksum(0, &[pseudo.as_slice(), &segment].concat());
            segment[sum_at..sum_at + 2].copy_from_slice(&sum.to_be_bytes());
            frame.extend_from_slice(&[0x08, 0x00]);
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&(20 + len).to_be_bytes());
            ip.extend_from_slice(&ip_id.to_be_bytes());
            ip.extend_from_slice(&[0x40, 0, 64, proto, 0, 0]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let sum = checksum(0, &ip);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            frame.extend_from_slice(&ip);
        }
        (s, d) => {
            let octets = |ip: IpAddr| match ip {
                IpAddr::V6(v6) => v6.octets(),
                IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            };
            let (s, d) = (octets(s), octets(d));
            let mut pseudo = Vec::with_capacity(40);
            pseudo.extend_from_slice(&s);
            pseudo.extend_from_slice(&d);
            pseudo.extend_from_slice(&u32::from(len).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, proto]);
            let sum = checksum(0, &[pseudo.as_slice(), &segment].concat());
            segment[sum_at..sum_at + 2].copy_from_slice(&sum.to_be_bytes());
            frame.extend_from_slice(&[0x86, 0xdd]);
            frame.extend_from_slice(&[0x60, 0, 0, 0]);
            frame.extend_from_slice(&len.to_be_bytes());
            frame.extend_from_slice(&[proto, 64]);
            frame.extend_from_slice(&s);
            frame.extend_from_slice(&d);
        }
    }
    frame.extend_from_slice(&segment);
    frame
}

/// A TCP conversation rebuilt from the two byte streams.
struct Tcp {
    client: SocketAddr,
    server: SocketAddr,
    /// Next sequence number of each side.
    seq: [u32; 2],
    ip_id: u16,
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

impl Tcp {
    fn new(client: SocketAddr, server: SocketAddr) -> Tcp {
        Tcp {
            client,
            server,
            seq: [1_000, 2_000_000],
            ip_id: 1,
        }
    }

    /// One segment from the client (`side` 0) or the server (1).
    fn segment(&mut self, side: usize, flags: u8, payload: &[u8]) -> Vec<u8> {
        let (src, dst) = if side == 0 {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        };
        let ack = if flags & SYN != 0 && side == 0 {
            0
        } else {
            self.seq[1 - side]
        };
        let mut tcp = Vec::with_capacity(20 + payload.len());
        tcp.extend_from_slice(&src.port().to_be_bytes());
        tcp.extend_from_slice(&dst.port().to_be_bytes());
        tcp.extend_from_slice(&self.seq[side].to_be_bytes());
        tcp.extend_from_slice(&ack.to_be_bytes());
        tcp.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        tcp.extend_from_slice(payload);
        let consumed = payload.len() as u32 + u32::from(flags & (SYN | FIN) != 0);
        self.seq[side] = self.seq[side].wrapping_add(consumed);
        self.ip_id = self.ip_id.wrapping_add(1);
        ip_frame(src.ip(), dst.ip(), 6, tcp, 16, self.ip_id)
    }
}

fn udp_datagram(src: SocketAddr, dst: SocketAddr, payload: &[u8], ip_id: u16) -> Vec<u8> {
    let mut udp = Vec::with_capacity(8 + payload.len());
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&dst.port().to_be_bytes());
    udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    ip_frame(src.ip(), dst.ip(), 17, udp, 6, ip_id)
}

/// The packets of one transcript, on interface `interface`.
fn packets(path: &Path, interface: u32) -> Result<(Interface, Vec<Packet>), String> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| format!("{name}: {e}"))?;
    let reader = transcript::Reader::new(std::io::BufReader::new(file), &name)?;
    let header = parse_header(&reader.header).map_err(|e| format!("{name}: {e}"))?;
    let ip = matches!(header.kind.as_str(), "tcp" | "tls" | "udp" | "udp-peer");
    let mut out = Vec::new();
    let mut tcp = None;
    // UDP: the latest sender and destination the transcript noted.
    let (mut udp_from, mut udp_to) = (header.to, header.to);
    let mut ip_id: u16 = 0;
    let placeholder = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0);
    for entry in reader {
        let entry = entry?;
        let at = micros(&entry.at)?;
        let inbound = entry.mark == Mark::In;
        let direction = if inbound { 1 } else { 2 };
        match (header.kind.as_str(), entry.mark) {
            (_, Mark::Event) => {
                let text = String::from_utf8_lossy(&entry.data);
                if let Some(a) = text.strip_prefix("from ").and_then(|a| a.parse().ok()) {
                    udp_from = Some(a);
                }
                if let Some(a) = text.strip_prefix("to ").and_then(|a| a.parse().ok()) {
                    udp_to = Some(a);
                }
            }
            ("tcp" | "tls", _) => {
                let (Some(from), Some(to)) = (header.from, header.to) else {
                    continue;
                };
                // muxcat is the server of an accepted session, else the client.
                let muxcat = usize::from(header.inbound);
                let flag = |side: usize| if side == muxcat { 2 } else { 1 };
                let conn = tcp.get_or_insert_with(|| {
                    let mut c = Tcp::new(from, to);
                    for (side, flags) in [(0, SYN), (1, SYN | ACK), (0, ACK)] {
                        let data = c.segment(side, flags, &[]);
                        out.push(Packet {
                            micros: at,
                            interface,
                            direction: flag(side),
                            data,
                        });
                    }
                    c
                });
                let side = if inbound { 1 - muxcat } else { muxcat };
                for piece in entry.data.chunks(SEGMENT) {
                    let data = conn.segment(side, PSH | ACK, piece);
                    out.push(Packet {
                        micros: at,
                        interface,
                        direction,
                        data,
                    });
                }
            }
            ("udp" | "udp-peer", _) => {
                let local = header.from.unwrap_or(placeholder);
                let peer = if inbound { udp_from } else { udp_to }.unwrap_or(placeholder);
                let (src, dst) = if inbound { (peer, local) } else { (local, peer) };
                for piece in entry.data.chunks(SEGMENT) {
                    ip_id = ip_id.wrapping_add(1);
                    out.push(Packet {
                        micros: at,
                        interface,
                        direction,
                        data: udp_datagram(src, dst, piece, ip_id),
                    });
                }
            }
            _ => out.push(Packet {
                micros: at,
                interface,
                direction,
                data: entry.data,
            }),
        }
    }
    let interface = Interface {
        link: if ip { LINKTYPE_ETHERNET } else { LINKTYPE_USER0 },
        name: header.session,
        description: header.text,
    };
    Ok((interface, out))
}

fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let len = (12 + body.len()) as u32;
    let mut out = Vec::with_capacity(len as usize);
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&len.to_le_bytes());
    out
}

/// Writes the transcripts at `inputs` to `out` as pcapng; a summary.
pub fn export(inputs: &[std::path::PathBuf], out: &Path) -> Result<String, String> {
    let mut interfaces = Vec::new();
    let mut all = Vec::new();
    for (i, path) in inputs.iter().enumerate() {
        let (interface, packets) = packets(path, i as u32)?;
        interfaces.push(interface);
        all.extend(packets);
    }
    // Merged in time order; a transcript's own order kept for equal times.
    all.sort_by_key(|p| p.micros);
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?);
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    option(&mut shb, 4, b"muxcat export");
    option(&mut shb, 0, &[]);
    let mut bytes = block(0x0A0D_0D0A, &shb);
    for interface in &interfaces {
        let mut idb = Vec::new();
        idb.extend_from_slice(&interface.link.to_le_bytes());
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&262_144u32.to_le_bytes());
        option(&mut idb, 2, interface.name.as_bytes());
        option(&mut idb, 3, interface.description.as_bytes());
        option(&mut idb, 0, &[]);
        bytes.extend(block(1, &idb));
    }
    file.write_all(&bytes)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    for p in &all {
        let mut epb = Vec::with_capacity(32 + p.data.len());
        epb.extend_from_slice(&p.interface.to_le_bytes());
        let ts = p.micros as u64;
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        epb.extend_from_slice(&(p.data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(p.data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&p.data);
        epb.resize(epb.len().next_multiple_of(4), 0);
        option(&mut epb, 2, &p.direction.to_le_bytes());
        option(&mut epb, 0, &[]);
        file.write_all(&block(6, &epb))
            .map_err(|e| format!("{}: {e}", out.display()))?;
    }
    file.flush().map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(format!(
        "{} packets from {} transcript(s) written to {}",
        all.len(),
        inputs.len(),
        out.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internet_checksums_verify() {
        // An IPv4 header with its checksum sums to zero.
        let frame = udp_datagram(
            "10.0.0.1:5000".parse().unwrap(),
            "10.0.0.2:53".parse().unwrap(),
            b"hi",
            7,
        );
        let ip = &frame[14..34];
        assert_eq!(checksum(0, ip), 0);
        // So does UDP over its pseudo-header.
        let mut pseudo = vec![10, 0, 0, 1, 10, 0, 0, 2, 0, 17, 0, 10];
        pseudo.extend_from_slice(&frame[34..]);
        assert_eq!(checksum(0, &pseudo), 0);
    }

    #[test]
    fn headers_name_the_ends_and_who_accepted() {
        let h = parse_header(
            "# muxcat transcript v1 sess-1 tcp 127.0.0.1:5000 -> 127.0.0.1:502 mode=binary dir=in",
        )
        .unwrap();
        assert!(h.inbound && h.kind == "tcp");
        assert_eq!(h.to.unwrap().port(), 502);
        let h = parse_header(
            "# muxcat transcript v1 s serial /dev/ttyUSB0 -> /dev/ttyUSB0 mode=line port=115200,8N1",
        )
        .unwrap();
        assert!(h.from.is_none() && !h.inbound);
        assert!(parse_header("# muxcat transcript v1 nonsense").is_err());
    }

    #[test]
    fn sequence_numbers_follow_the_bytes() {
        let mut c = Tcp::new(
            "127.0.0.1:40000".parse().unwrap(),
            "127.0.0.1:80".parse().unwrap(),
        );
        c.segment(0, SYN, &[]);
        c.segment(1, SYN | ACK, &[]);
        let data = c.segment(0, PSH | ACK, b"GET / HTTP/1.0\r\n\r\n");
        let tcp = &data[34..];
        assert_eq!(u32::from_be_bytes(tcp[4..8].try_into().unwrap()), 1_001);
        assert_eq!(u32::from_be_bytes(tcp[8..12].try_into().unwrap()), 2_000_001);
        assert_eq!(c.seq[0], 1_001 + 18);
    }
}
