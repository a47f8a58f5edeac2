"""The `--expect FILE` of `hardnir keys scan`: which SHA256 host-key fingerprints each host should have.

Operators get fingerprints from a cloud console, a provisioning system or `ssh-keygen -l`; any of those forms is
read, and a public key line is turned into its fingerprint.
"""

from __future__ import annotations

import base64

import paramiko

from hardnir.ssh import fingerprint


def parse_expected(text: str, source: str = "expect file") -> dict[str, list[str]]:
    """Host -> SHA256 fingerprints. Each line is one of:

        HOST SHA256:...                        (a list from a provisioning system)
        BITS SHA256:... HOST (TYPE)            (`ssh-keygen -lf` output, e.g. of `ssh-keyscan HOST`)
        HOST[,HOST...] KEYTYPE BASE64 [...]    (known_hosts or `ssh-keyscan` lines: the fingerprint is computed)

    Blank lines and `#` comments are skipped; raises ValueError naming the first bad line.
    """
    found: dict[str, list[str]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{source} line {number}"
        prints = [w for w in words if w.startswith("SHA256:")]
        if prints:
            hosts = [w.rpartition("@")[2] for w in words  # ssh-keygen -l shows the key's comment, often user@host
                     if w not in prints and not w.isdigit() and not w.startswith("(")]
            fp = prints[0].rstrip("=")
        elif len(words) >= 3 and (key := _public_key(words[1], words[2])) is not None:
            hosts = words[0].split(",")
            fp = fingerprint(key)
        elif any(w.startswith("MD5:") for w in words):
            raise ValueError(f"{where}: MD5 fingerprints are not accepted; give SHA256 (ssh-keygen -l -E sha256)")
        else:
            raise ValueError(f"{where}: expected 'HOST SHA256:...', ssh-keygen -l output or a known_hosts line")
        if not hosts:
            raise ValueError(f"{where}: no host name next to {fp}")
        if any(h.startswith("|1|") for h in hosts):
            raise ValueError(f"{where}: hashed host names cannot be matched; give names or addresses")
        for host in hosts:
            found.setdefault(host, [])
            if fp not in found[host]:
                found[host].append(fp)
    return found


def _public_key(kind: str, blob: str) -> paramiko.PKey | None:
    try:
        return paramiko.PKey.from_type_string(kind, base64.b64decode(blob, validate=True))
    except Exception:  # not base64, an unknown key type, a blob that is not that type: not a key line
        return None
