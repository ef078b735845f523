#!/usr/bin/env python3
"""pty_run.py CMD...: run CMD with stdin, stdout and stderr on a new
pseudo-terminal (as on an operator's terminal), copy everything it
printed to our stdout, and exit with its exit code. Bounded: killed
after 120 s."""
import os, subprocess, sys, time

def main():
    master, slave = os.openpty()
    p = subprocess.Popen(sys.argv[1:], stdin=slave, stdout=slave,
                         stderr=slave, close_fds=True)
    os.close(slave)
    out, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every holder of the terminal closed it
            break
        if not chunk:
            break
        out.append(chunk)
    else:
        p.kill()
    sys.stdout.buffer.write(b"".join(out))
    sys.exit(p.wait())

if __name__ == "__main__":
    main()
