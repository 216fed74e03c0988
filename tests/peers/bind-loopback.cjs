// Preloaded with `node --require` so a server that listens on a bare port binds 127.0.0.1 only
// (server-everything binds every interface otherwise; the tests never leave loopback).
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if ((typeof args[0] === "number" || typeof args[0] === "string") && (args.length === 1 || typeof args[1] === "function")) {
    args.splice(1, 0, "127.0.0.1");
  }
  return listen.apply(this, args);
};
