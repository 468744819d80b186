#!/usr/bin/env python3
"""An MLLP receiver built on the PyPI `hl7` package, independent of csmil: it judges csmil's HL7 v2 output.

Every framed message is read with hl7.mllp (MLLP framing), decoded as strict UTF-8 and parsed with hl7.parse;
each segment's fields are written, component by component and unescaped by the package, as one JSON line to
--log. The answer is an ACK made by the package (Message.create_ack) with the code the --acks list gives for the
message's number (1-based; AA after the list ends), or no answer ("SILENT": the connection stays open) or a
closed connection ("CLOSE"). With --tls-cert/--tls-key it speaks MLLP over TLS; --client-ca asks for a client
certificate signed by that CA. Writes its port to --port-file once listening; stops on SIGTERM.
"""
import argparse
import asyncio
import json
import os
import signal
import ssl
import sys

import hl7
import hl7.mllp


def fields_of(message, segment, occurrence):
    """The segment's fields as lists of components (first repetition), unescaped by the hl7 package."""
    result = []
    for index in range(1, len(segment)):
        raw = str(segment[index])
        if segment[0][0] == "MSH" and index <= 2:
            result.append([raw])
            continue
        first = raw.split("~")[0]
        count = len(first.split("^")) if first else 0
        components = []
        for component in range(1, count + 1):
            components.append(message.extract_field(str(segment[0][0]), occurrence, index, 1, component))
        result.append(components)
    return result


def describe(raw_bytes, number):
    text = raw_bytes.decode("utf-8")  # strict: csmil declares UTF-8 in MSH-18
    message = hl7.parse(text)
    seen = {}
    segments = []
    for segment in message:
        name = str(segment[0][0])
        seen[name] = seen.get(name, 0) + 1
        segments.append({"id": name, "fields": fields_of(message, segment, seen[name])})
    return message, {
        "number": number,
        "raw": text,
        "control_id": str(message.segment("MSH")(10)),
        "type": str(message.segment("MSH")(9)),
        "segments": segments,
    }


async def main():
    # A parent that blocks SIGTERM in its threads (a Swift test process) passes the blocked mask on to us.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--acks", default="")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--client-ca")
    args = parser.parse_args()
    acks = [code for code in args.acks.split(",") if code]
    counter = {"n": 0}
    log = open(args.log, "a", encoding="utf-8")

    async def serve(reader, writer):
        try:
            while True:
                try:
                    block = await reader.readblock()
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                counter["n"] += 1
                number = counter["n"]
                code = acks[number - 1] if number <= len(acks) else "AA"
                try:
                    message, record = describe(block, number)
                except Exception as error:  # not parseable: record it, reject it
                    record = {"number": number, "error": repr(error), "raw": block.decode("utf-8", "replace")}
                    message, code = None, "AR"
                record["answer"] = code
                log.write(json.dumps(record, ensure_ascii=False) + "\n")
                log.flush()
                if code == "SILENT":
                    await asyncio.sleep(3600)
                    return
                if code == "CLOSE" or message is None:
                    return
                ack = message.create_ack(code, message_id="ACK%d" % number, application="JUDGE", facility="TEST")
                text = str(ack)
                if code != "AA":
                    text = text.replace("MSA|%s|%s" % (code, record["control_id"]),
                                        "MSA|%s|%s|judge answer %s to message %d" % (code, record["control_id"],
                                                                                      code, number))
                writer.writeblock(text.encode("utf-8"))
                await writer.drain()
        finally:
            writer.close()

    context = None
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            context.load_verify_locations(args.client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    server = await hl7.mllp.start_hl7_server(serve, "127.0.0.1", args.port, ssl=context)
    port = server.sockets[0].getsockname()[1]
    with open(args.port_file + ".tmp", "w") as handle:
        handle.write(str(port))
    os.rename(args.port_file + ".tmp", args.port_file)
    # SIGTERM ends the process at once: the log is flushed after every line, and open client connections (csmil
    # keeps its MLLP connection) would otherwise hold the server's shutdown.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: os._exit(0))
    await asyncio.Event().wait()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
