// Node 18 (Debian 12's nodejs) has Web Crypto only as require("node:crypto").webcrypto, not as
// the global Better Auth and its @noble and jose modules look for; Node 19+ has both.
import { webcrypto } from "node:crypto";

if (!globalThis.crypto) globalThis.crypto = webcrypto;
