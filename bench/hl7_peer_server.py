"""The non-durable peer: python-hl7's asyncio MLLP server that parses each message and ACKs
it without storing anything. Usage: python bench/hl7_peer_server.py PORT"""
from __future__ import annotations

import asyncio
import sys

from hl7.mllp import start_hl7_server


async def handle(reader, writer):
    try:
        while not writer.is_closing():
            message = await reader.readmessage()
            writer.writemessage(message.create_ack())
            await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    async with await start_hl7_server(handle, host="127.0.0.1", port=port, limit=1 << 20) as server:
        print("ready", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
