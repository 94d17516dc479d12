"""Starts commands the same way and measures each run: wall time from
posix_spawn to wait4, and the child's peak resident set (ru_maxrss).

Reads JSON on stdin: {"runs": N, "warmup": W, "commands": {name: [argv,
...]}, "env": {...}}. Runs each command W times unmeasured, then N rounds in
which every command runs once (interleaved, so that all meet the same
noise); a command with several argvs uses them in turn (lock, then unlock).
Prints JSON: {name: [{"ms": float, "maxrssKiB": int, "code": int}, ...]}.
The child's stdin, stdout and stderr are /dev/null.
"""

import json
import os
import sys
import time


def main():
    spec = json.load(sys.stdin)
    env = spec["env"]
    commands = spec["commands"]
    null = os.open(os.devnull, os.O_RDWR)
    actions = [(os.POSIX_SPAWN_DUP2, null, fd) for fd in (0, 1, 2)]

    def once(argv):
        start = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
        _, status, usage = os.wait4(pid, 0)
        ms = (time.perf_counter() - start) * 1000
        return {"ms": ms, "maxrssKiB": usage.ru_maxrss,
                "code": os.waitstatus_to_exitcode(status)}

    warmup = spec.get("warmup", 1)
    out = {name: [] for name in commands}
    for i in range(warmup + spec["runs"]):
        for name, argvs in commands.items():
            run = once(argvs[i % len(argvs)])
            if i >= warmup:
                out[name].append(run)
    json.dump(out, sys.stdout)


main()
