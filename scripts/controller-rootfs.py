#!/usr/bin/env python3
"""Writes the root filesystem of the controller image's base as a tarball.

    scripts/controller-rootfs.py OUT.tar BINARY [BINARY...]

The tarball holds exactly what the binaries need at run time and nothing
else: every shared library `ldd` lists for them (and the program
interpreter), the system CA bundle, /etc/passwd and /etc/group with root and
the unprivileged user 65532 ("nonroot", as distroless names it),
/etc/nsswitch.conf (glibc 2.36 has the files and dns modules built in),
/tmp (1777), the state folder /var/lib/reconcile and the home folder
/home/nonroot (both owned by 65532, mode 0700). The binaries themselves are
not in it (the Dockerfile copies the controller in).

The layout is Debian 12's merged /usr: libraries under /usr/lib, /lib and
/lib64 symlinks into it. Entries are sorted, owned by root unless said
otherwise and dated SOURCE_DATE_EPOCH (default 0), so the same inputs give
the same bytes: scripts/controller-image.sh compares the tarball's hash with
the base image's label to skip the import.

Fails (exit 1) when ldd cannot resolve a library ("not found") or a file is
missing, naming it.
"""
import io
import os
import re
import subprocess
import sys
import tarfile

NONROOT = 65532
EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def fail(message):
    print(f"controller-rootfs: {message}", file=sys.stderr)
    sys.exit(1)


def libraries(binary):
    """The absolute paths ldd resolves for BINARY (interpreter included)."""
    try:
        out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        fail(f"ldd {binary}: {e}")
    paths = []
    for line in out.splitlines():
        line = line.strip()
        if "not found" in line:
            fail(f"{binary}: a library is missing: {line}")
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            paths.append(m.group(1))
    return paths


def canonical(path):
    """Where PATH lives in a merged-/usr tree (/lib/x -> /usr/lib/x)."""
    for prefix, target in (("/lib64/", "/usr/lib64/"), ("/lib/", "/usr/lib/")):
        if path.startswith(prefix):
            return target + path[len(prefix):]
    return path


class Tree:
    """Entries of the tarball by path, written sorted."""

    def __init__(self):
        self.entries = {}

    def _info(self, path, kind, mode, uid=0, gid=0):
        info = tarfile.TarInfo(path.lstrip("/"))
        info.type = kind
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        info.mtime = EPOCH
        return info

    def dir(self, path, mode=0o755, uid=0, gid=0):
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            parent = "/" + "/".join(parts[:i])
            if parent not in self.entries:
                self.entries[parent] = (self._info(parent, tarfile.DIRTYPE, 0o755), None)
        self.entries[path] = (self._info(path, tarfile.DIRTYPE, mode, uid, gid), None)

    def file(self, path, data, mode=0o644):
        if os.path.dirname(path) not in self.entries:
            self.dir(os.path.dirname(path))
        info = self._info(path, tarfile.REGTYPE, mode)
        info.size = len(data)
        self.entries[path] = (info, data)

    def host_file(self, path, source=None):
        source = source or path
        try:
            with open(source, "rb") as f:
                data = f.read()
            mode = os.stat(source).st_mode & 0o755
        except OSError as e:
            fail(f"{source}: {e.strerror}")
        self.file(path, data, mode)

    def symlink(self, path, target):
        info = self._info(path, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.entries[path] = (info, None)

    def write(self, out):
        with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
            for path in sorted(self.entries):
                info, data = self.entries[path]
                tar.addfile(info, io.BytesIO(data) if data is not None else None)


def main(argv):
    if len(argv) < 3:
        fail("usage: controller-rootfs.py OUT.tar BINARY [BINARY...]")
    out, binaries = argv[1], argv[2:]
    tree = Tree()
    for d in ("/usr/bin", "/usr/lib", "/usr/lib64", "/etc/ssl/certs", "/var/lib"):
        tree.dir(d)
    tree.symlink("/lib", "usr/lib")
    tree.symlink("/lib64", "usr/lib64")
    tree.symlink("/bin", "usr/bin")
    tree.dir("/tmp", 0o1777)
    tree.dir("/var/lib/reconcile", 0o700, NONROOT, NONROOT)
    tree.dir("/home")
    tree.dir("/home/nonroot", 0o700, NONROOT, NONROOT)

    for binary in binaries:
        for lib in libraries(binary):
            # The file itself, under the name the loader asks for (sonames are
            # symlinks on the host; here they are the file).
            tree.host_file(canonical(lib), os.path.realpath(lib))

    tree.host_file(CA_BUNDLE, os.path.realpath(CA_BUNDLE))
    tree.dir("/usr/lib/ssl")
    tree.symlink("/usr/lib/ssl/certs", "/etc/ssl/certs")
    tree.symlink("/usr/lib/ssl/cert.pem", CA_BUNDLE)
    tree.file("/etc/passwd",
              b"root:x:0:0:root:/root:/usr/sbin/nologin\n"
              b"nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin\n")
    tree.file("/etc/group", b"root:x:0:\nnonroot:x:65532:\n")
    tree.file("/etc/nsswitch.conf", b"passwd: files\ngroup: files\nhosts: files dns\n")
    tree.write(out)


if __name__ == "__main__":
    main(sys.argv)
