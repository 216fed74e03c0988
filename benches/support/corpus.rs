//! Deterministic corpora for the masking benchmarks: realistic AWS JSON (DescribeInstances,
//! ListSecrets and GetSecretValue shapes) with no secrets, the same with one secret per 10 KB,
//! AWS XML (IAM and STS shapes), and log text with non-ASCII characters.
//!
//! `cargo run --release --example gen-corpus -- DIR [MiB]` writes them as files, for measuring
//! `hoopguard mask` from the command line.

#![allow(dead_code)]

/// A small deterministic PRNG (xorshift), so every run measures the same bytes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| b"0123456789abcdef"[self.below(16) as usize] as char)
            .collect()
    }
    pub fn alnum(&mut self, n: usize) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..n)
            .map(|_| A[self.below(A.len() as u64) as usize] as char)
            .collect()
    }
    pub fn upper(&mut self, n: usize) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        (0..n)
            .map(|_| A[self.below(A.len() as u64) as usize] as char)
            .collect()
    }
}

fn date(r: &mut Rng) -> String {
    format!(
        "2026-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
        1 + r.below(12),
        1 + r.below(28),
        r.below(24),
        r.below(60),
        r.below(60)
    )
}

fn instance(r: &mut Rng) -> String {
    let id = r.hex(17);
    let ip = format!("10.{}.{}.{}", r.below(256), r.below(256), r.below(256));
    format!(
        r#"{{"InstanceId":"i-{id}","ImageId":"ami-{}","State":{{"Code":16,"Name":"running"}},"PrivateDnsName":"ip-{}.ec2.internal","PrivateIpAddress":"{ip}","InstanceType":"m5.large","LaunchTime":"{}","Placement":{{"AvailabilityZone":"us-east-1{}","Tenancy":"default"}},"SubnetId":"subnet-{}","VpcId":"vpc-{}","Architecture":"x86_64","RootDeviceName":"/dev/xvda","BlockDeviceMappings":[{{"DeviceName":"/dev/xvda","Ebs":{{"AttachTime":"{}","DeleteOnTermination":true,"Status":"attached","VolumeId":"vol-{}"}}}}],"Tags":[{{"Key":"Name","Value":"web-{}"}},{{"Key":"team","Value":"platform"}}],"CpuOptions":{{"CoreCount":1,"ThreadsPerCore":2}},"Monitoring":{{"State":"disabled"}}}}"#,
        r.hex(17),
        ip.replace('.', "-"),
        date(r),
        ["a", "b", "c"][r.below(3) as usize],
        r.hex(17),
        r.hex(17),
        date(r),
        r.hex(17),
        r.below(1000)
    )
}

fn secret_entry(r: &mut Rng) -> String {
    let name = format!("prod/service-{}/db", r.below(500));
    format!(
        r#"{{"ARN":"arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-{}","Name":"{name}","Description":"Database credentials","LastChangedDate":{}.{},"LastAccessedDate":{}.0,"SecretVersionsToStages":{{"{}":["AWSCURRENT"]}},"CreatedDate":{}.5}}"#,
        r.alnum(6),
        1_700_000_000 + r.below(50_000_000),
        r.below(1000),
        1_700_000_000 + r.below(50_000_000),
        uuid(r),
        1_700_000_000 + r.below(50_000_000),
    )
}

fn uuid(r: &mut Rng) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        r.hex(8),
        r.hex(4),
        r.hex(4),
        r.hex(4),
        r.hex(12)
    )
}

fn get_secret_metadata(r: &mut Rng) -> String {
    format!(
        r#"{{"ARN":"arn:aws:secretsmanager:us-east-1:123456789012:secret:app-{}","Name":"app","VersionId":"{}","VersionStages":["AWSCURRENT"],"CreatedDate":{}.1}}"#,
        r.alnum(6),
        uuid(r),
        1_700_000_000 + r.below(50_000_000)
    )
}

/// One of several secrets, in the places responses carry them.
fn secret(r: &mut Rng) -> String {
    match r.below(9) {
        0 => format!(
            r#"{{"AccessKeyId":"AKIA{}","Status":"Active"}}"#,
            r.upper(16)
        ),
        1 => format!(
            r#"{{"Name":"app","SecretString":"{{\"username\":\"app\",\"password\":\"{}\"}}"}}"#,
            r.alnum(24)
        ),
        2 => format!(
            r#"{{"Owner":"{}.{}@example.com"}}"#,
            r.alnum(6).to_lowercase(),
            r.alnum(5).to_lowercase()
        ),
        3 => r#"{"Card":"4111 1111 1111 1111"}"#.to_string(),
        4 => format!(r#"{{"Token":"ghp_{}"}}"#, r.alnum(36)),
        5 => format!(
            r#"{{"Authorization":"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ{}.{}"}}"#,
            r.alnum(40),
            r.alnum(86)
        ),
        6 => format!(
            r#"{{"DATABASE_URL":"postgres://app:{}@db.internal:5432/app"}}"#,
            r.alnum(20)
        ),
        7 => format!(
            r#"{{"PrivateKey":"-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----"}}"#,
            r.alnum(400)
        ),
        _ => format!(
            r#"{{"Credentials":{{"SessionToken":"{}","SecretAccessKey":"{}"}}}}"#,
            r.alnum(300),
            r.alnum(40)
        ),
    }
}

/// AWS JSON of about `size` bytes; with `dense`, one secret per 10 KB.
pub fn aws_json(size: usize, dense: bool, seed: u64) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut out = String::with_capacity(size + 4096);
    let mut next_secret = 10_000;
    out.push_str(r#"{"Reservations":["#);
    while out.len() < size {
        let piece = match r.below(3) {
            0 => instance(&mut r),
            1 => secret_entry(&mut r),
            _ => get_secret_metadata(&mut r),
        };
        out.push_str(&piece);
        out.push(',');
        if dense && out.len() >= next_secret {
            out.push_str(&secret(&mut r));
            out.push(',');
            next_secret += 10_000;
        }
    }
    out.push_str("{}]}");
    out.into_bytes()
}

/// AWS XML (IAM ListUsers/GetUser, STS GetCallerIdentity, and an AssumeRole result with
/// credentials every ~20 KB).
pub fn aws_xml(size: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut out = String::with_capacity(size + 4096);
    out.push_str(r#"<ListUsersResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><ListUsersResult><Users>"#);
    let mut next = 20_000;
    while out.len() < size {
        let user = format!("user-{}", r.below(100_000));
        out.push_str(&format!(
            "<member><Path>/</Path><UserName>{user}</UserName><UserId>AIDA{}</UserId><Arn>arn:aws:iam::123456789012:user/{user}</Arn><CreateDate>{}</CreateDate><PasswordLastUsed>{}</PasswordLastUsed></member>",
            r.upper(17),
            date(&mut r),
            date(&mut r)
        ));
        if out.len() >= next {
            out.push_str(&format!(
                "<AssumeRoleResult><Credentials><AccessKeyId>ASIA{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/agent/alice</Arn><AssumedRoleId>AROA{}:alice</AssumedRoleId></AssumedRoleUser></AssumeRoleResult>",
                r.upper(16),
                r.alnum(40),
                r.alnum(300),
                date(&mut r),
                r.upper(17)
            ));
            next += 20_000;
        }
    }
    out.push_str("</Users></ListUsersResult></ListUsersResponse>");
    out.into_bytes()
}

/// Log text with non-ASCII characters, and an email or key now and then (every ~4 KB).
pub fn unicode_text(size: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng::new(seed);
    const WORDS: &[&str] = &[
        "запрос",
        "обработан",
        "東京",
        "リクエスト",
        "完了",
        "Grüße",
        "naïve",
        "café",
        "señal",
        "✓",
        "→",
        "user",
        "request",
        "latency",
        "ms",
        "ok",
        "error",
        "retry",
        "größe",
        "データ",
        "ключ",
        "🚀",
    ];
    let mut out = String::with_capacity(size + 256);
    let mut next = 4096;
    while out.len() < size {
        out.push_str(&date(&mut r));
        out.push_str(" INFO ");
        for _ in 0..12 {
            out.push_str(WORDS[r.below(WORDS.len() as u64) as usize]);
            out.push(' ');
        }
        if out.len() >= next {
            if r.below(2) == 0 {
                out.push_str(&format!(
                    "contact {}@example.org ",
                    r.alnum(8).to_lowercase()
                ));
            } else {
                out.push_str(&format!("key=AKIA{} ", r.upper(16)));
            }
            next += 4096;
        }
        out.push('\n');
    }
    out.into_bytes()
}
