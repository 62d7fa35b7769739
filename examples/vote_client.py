#!/usr/bin/env python3
"""A client of agora's voting service (docs/vote-protocol.md) in Python's standard library.

Interactive: type the service's commands; events are printed as they come.

    python3 examples/vote_client.py --server 127.0.0.1:7400 --name ann --password secret

With --demo it plays the report's menu once (setup, negotiate, discover, receive, open a
question, vote, stats, exit) and prints one JSON line of what it saw; it exits 1 if the
service refused anything.
"""

import argparse
import json
import select
import socket
import sys


class VoteClient:
    """One connection: a command at a time, its reply, the pushed events kept in order."""

    def __init__(self, host, port, timeout=60.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.events = []
        self.bye = None
        hello = self._line()
        if not hello.startswith("HELLO "):
            raise RuntimeError("not a voting service: %r" % hello)

    def _line(self):
        raw = self.file.readline(1 << 20)
        if not raw:
            raise ConnectionError("the server closed the connection (%s)" % self.bye)
        return raw.decode("utf-8").rstrip("\r\n")

    def _take(self, line):
        """Keeps a pushed line; returns the line if it is a reply."""
        if line.startswith("EVENT "):
            _, number, event = line.split(" ", 2)
            self.events.append((int(number), event))
        elif line.startswith("BYE"):
            self.bye = line
        elif line.startswith("#") or line.startswith("GAP"):
            pass
        else:
            return line
        return None

    def reply(self):
        while True:
            reply = self._take(self._line())
            if reply is not None:
                return reply

    def command(self, line):
        self.sock.sendall((line + "\n").encode("utf-8"))
        return self.reply()

    def ok(self, line):
        reply = self.command(line)
        word = line.split()[0].upper()
        if not reply.startswith("OK " + word):
            raise RuntimeError("%s: %s" % (word, reply))
        return reply

    def wait_event(self, prefix):
        while not any(e.startswith(prefix) for _, e in self.events):
            self._take(self._line())


def field(reply, key):
    for word in reply.split():
        if word.startswith(key + "="):
            return word[len(key) + 1:]
    return None


def tail_json(reply):
    return json.loads(reply.split(" ", 2)[2])


def demo(client, name, password):
    login = client.ok("LOGIN %s %s" % (name, password))
    pin = int(field(login, "pin"))
    client.ok("SETUP python, stdlib | tcp | one thread")
    client.ok("NEGOTIATE yes")
    discover = client.ok("DISCOVER")
    mine = tail_json(client.ok("RECEIVE %d" % pin))
    question = field(client.ok("OPEN votes=1 Would you rather read or write? | read | write"), "question")
    client.wait_event("QUESTION %s " % question)
    vote = client.ok("VOTE %s read" % question)
    client.wait_event("CLOSED %s" % question)
    stats = tail_json(client.ok("STATS %s" % question))
    client.ok("EXIT")
    return {
        "pin": pin,
        "discover": discover,
        "stored": mine,
        "vote": vote,
        "stats": stats,
        "events": ["%s" % e for _, e in client.events],
    }


def interactive(client):
    print("connected; HELP lists the commands")
    while True:
        ready, _, _ = select.select([sys.stdin, client.sock], [], [])
        if client.sock in ready:
            line = client._line()
            print(line)
            if line.startswith("BYE"):
                return
        if sys.stdin in ready:
            command = sys.stdin.readline()
            if not command:
                return
            client.sock.sendall(command.encode("utf-8"))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", required=True, help="host:port")
    p.add_argument("--name")
    p.add_argument("--password")
    p.add_argument("--demo", action="store_true", help="play the menu once and print JSON")
    a = p.parse_args()
    host, _, port = a.server.rpartition(":")
    client = VoteClient(host, int(port))
    if not a.demo:
        if a.name:
            print(client.ok("LOGIN %s %s" % (a.name, a.password)))
        interactive(client)
        return 0
    try:
        print(json.dumps(demo(client, a.name, a.password)))
    except (RuntimeError, ConnectionError) as e:
        print("refused: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
