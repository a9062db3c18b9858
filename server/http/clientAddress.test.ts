import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { clientKey } from "./clientAddress";

describe("the client a request counts against", () => {
  it("an IPv4 address is itself, also when IPv4-mapped", () => {
    assert.equal(clientKey("198.51.100.7"), "198.51.100.7");
    assert.equal(clientKey("::ffff:198.51.100.7"), "198.51.100.7");
  });
  it("IPv6 addresses of one /64 are one client, whatever their spelling; another /64 is another", () => {
    const a = clientKey("2001:db8:1:2::1");
    assert.equal(a, "2001:db8:1:2::/64");
    assert.equal(clientKey("2001:0db8:0001:0002:ffff:eeee:dddd:cccc"), a);
    assert.equal(clientKey("2001:DB8:1:2:0:0:0:9%eth0"), a);
    assert.notEqual(clientKey("2001:db8:1:3::1"), a);
    assert.equal(clientKey("::1"), "0:0:0:0::/64");
  });
  it("no address is no client", () => {
    assert.equal(clientKey(undefined), undefined);
    assert.equal(clientKey(""), undefined);
  });
});
