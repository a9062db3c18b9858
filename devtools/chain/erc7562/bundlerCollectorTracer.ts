// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * The ERC-7562 collector tracer of Pimlico's alto bundler, as JavaScript source for `debug_traceCall`.
 *
 * Vendored from @pimlico/alto 0.0.20 (npm), esm/rpc/validation/BundlerCollectorTracerV07.js, function
 * `bundlerCollectorTracer` (itself derived from eth-infinitism's bundler), GPL-3.0-or-later like alto; the licence
 * text is contracts/LICENSE. The package exports only its CLI, so the tracer cannot be imported.
 *
 * Changes against alto, each marked "[changed]" below:
 *  1. The depth of the EntryPoint's own frame is a parameter. alto traces PimlicoSimulations → EntryPoint
 *     .delegateAndRevert → EntryPointSimulations (depth 3); we trace EntryPointSimulations put at the EntryPoint's
 *     address by a state override and called directly, so the EntryPoint's frame is depth 1.
 *  2. Memory slices of zero length are not taken: anvil's tracer throws on a zero-length `log.memory.slice` at the
 *     end of memory (an event with empty data, such as SimpleAccount's, or an empty RETURN).
 *  3. `const`/`let` are spelled `var` (alto strips them before sending; anvil's engine takes `var` as is).
 *  4. exit() tells RETURN from REVERT by `getError() == null`: anvil's getError() is undefined, not null, when
 *     a frame succeeds, so alto's `=== null` marks every frame reverted there.
 *
 * Returned data (as alto's):
 *  callsFromEntryPoint: per call the EntryPoint makes (factory's createSender, validateUserOp,
 *    validatePaymasterUserOp, its own self-calls): the opcodes counted, storage accessed per address (first value
 *    read, write counts), code sizes of addresses touched by EXTCODE and CALL opcodes, EXTCODE accesses, oog
 *  keccak: inputs of KECCAK256 (21 to 511 bytes), from which slots associated with an address are recognised
 *  calls: every frame's entry and exit (type, from, to, method, gas, value / return or revert data)
 *  logs: events emitted below the EntryPoint's frame
 */

/** The tracer's JavaScript source; `entryPointDepth` is the call depth at which the EntryPoint's code runs. */
export function bundlerCollectorTracer(entryPointDepth: number): string {
  if (!Number.isInteger(entryPointDepth) || entryPointDepth < 1) throw new RangeError(`bad entryPointDepth ${entryPointDepth}`);
  return TRACER_SOURCE.replaceAll("ENTRY_POINT_DEPTH", String(entryPointDepth));
}

const TRACER_SOURCE = String.raw`{
    callsFromEntryPoint: [],
    currentLevel: null,
    keccak: [],
    calls: [],
    logs: [],
    debug: [],
    lastOp: "",
    lastThreeOpcodes: [],
    // event sent after all validations are done: keccak("BeforeExecution()")
    stopCollectingTopic: "bb47ee3e183a558b1a2ff0874b079f3fc5478b7454eacf2bfc5af2ff5878f972",
    stopCollecting: false,
    topLevelCallCounter: 0,
    // [changed 2] a hex copy of memory [ofs, ofs + len), "0x" when empty
    memoryHex(log, ofs, len) {
        if (len <= 0) {
            return "0x";
        }
        return toHex(log.memory.slice(ofs, ofs + len));
    },
    fault(log, _db) {
        this.debug.push(JSON.stringify({
            type: "fault",
            depth: log.getDepth(),
            gas: log.getGas(),
            cost: log.getCost(),
            err: log.getError()
        }));
    },
    result(_ctx, _db) {
        return {
            callsFromEntryPoint: this.callsFromEntryPoint,
            keccak: this.keccak,
            logs: this.logs,
            calls: this.calls,
            debug: this.debug // for internal debugging.
        };
    },
    enter(frame) {
        if (this.stopCollecting) {
            return;
        }
        this.calls.push({
            type: frame.getType(),
            from: toHex(frame.getFrom()),
            to: toHex(frame.getTo()),
            method: toHex(frame.getInput()).slice(0, 10),
            gas: frame.getGas(),
            value: frame.getValue()
        });
    },
    exit(frame) {
        if (this.stopCollecting) {
            return;
        }
        // [changed 4] was getError() === null
        this.calls.push({
            type: frame.getError() == null ? "RETURN" : "REVERT",
            gasUsed: frame.getGasUsed(),
            data: toHex(frame.getOutput()).slice(0, 4000)
        });
    },
    // increment the "key" in the list. if the key is not defined yet, then set it to "1"
    countSlot(list, key) {
        if (list[key]) {
            list[key] += 1;
        }
        else {
            list[key] = 1;
        }
    },
    step(log, db) {
        // [changed 1] ENTRY_POINT_DEPTH was 3
        if (log.getDepth() < ENTRY_POINT_DEPTH) {
            return;
        }
        if (this.stopCollecting) {
            return;
        }
        var opcode = log.op.toString();
        var stackSize = log.stack.length();
        var stackTop3 = [];
        for (var i = 0; i < 3 && i < stackSize; i++) {
            stackTop3.push(log.stack.peek(i));
        }
        this.lastThreeOpcodes.push({ opcode: opcode, stackTop3: stackTop3 });
        if (this.lastThreeOpcodes.length > 3) {
            this.lastThreeOpcodes.shift();
        }
        if (log.getGas() < log.getCost() ||
            // special rule for SSTORE with gas metering
            (opcode === "SSTORE" && log.getGas() < 2300)) {
            this.currentLevel.oog = true;
        }
        if (opcode === "REVERT" || opcode === "RETURN") {
            if (log.getDepth() === ENTRY_POINT_DEPTH) {
                // exit() is not called on top-level return/revent, so we reconstruct it
                // from opcode
                var ofs = Number.parseInt(log.stack.peek(0).toString());
                var len = Number.parseInt(log.stack.peek(1).toString());
                var data = this.memoryHex(log, ofs, len).slice(0, 4000);
                this.calls.push({
                    type: opcode,
                    gasUsed: 0,
                    data: data
                });
            }
            // NOTE: flushing all history after RETURN
            this.lastThreeOpcodes = [];
        }
        if (log.getDepth() === ENTRY_POINT_DEPTH) {
            if (opcode === "CALL" || opcode === "STATICCALL") {
                // stack.peek(0) - gas
                var addr = toAddress(log.stack.peek(1).toString(16));
                var topLevelTargetAddress = toHex(addr);
                // stack.peek(2) - value
                var ofs = Number.parseInt(log.stack.peek(3).toString());
                // stack.peek(4) - len
                var topLevelMethodSig = this.memoryHex(log, ofs, 4);
                this.currentLevel = this.callsFromEntryPoint[this.topLevelCallCounter] = {
                    topLevelMethodSig: topLevelMethodSig,
                    topLevelTargetAddress: topLevelTargetAddress,
                    access: {},
                    opcodes: {},
                    extCodeAccessInfo: {},
                    contractSize: {}
                };
                this.topLevelCallCounter++;
            }
            else if (opcode === "LOG1") {
                // ignore log data ofs, len
                var topic = log.stack.peek(2).toString(16);
                if (topic === this.stopCollectingTopic) {
                    this.stopCollecting = true;
                }
            }
            this.lastOp = "";
            return;
        }
        var lastOpInfo = this.lastThreeOpcodes[this.lastThreeOpcodes.length - 2];
        // store all addresses touched by EXTCODE* opcodes
        if (lastOpInfo &&
            lastOpInfo.opcode &&
            lastOpInfo.opcode.match(/^(EXT.*)$/) != null) {
            var addr = toAddress(lastOpInfo.stackTop3[0].toString(16));
            var addrHex = toHex(addr);
            // [OP-051]
            if (!(this.lastThreeOpcodes[0].opcode.match(/\w+/) !== null &&
                this.lastThreeOpcodes[1].opcode === "EXTCODESIZE" &&
                this.lastThreeOpcodes[2].opcode === "ISZERO")) {
                this.currentLevel.extCodeAccessInfo[addrHex] = opcode;
            }
        }
        // not using 'isPrecompiled' to only allow the ones defined by the ERC-4337 as stateless precompiles
        // [OP-062]
        var isAllowedPrecompiled = function (address) {
            var addrHex = toHex(address);
            var addressInt = Number.parseInt(addrHex);
            return addressInt > 0 && addressInt < 10;
        };
        // [OP-041]
        if (opcode.match(/^(EXT.*|CALL|CALLCODE|DELEGATECALL|STATICCALL)$/) != null) {
            var idx = opcode.startsWith("EXT") ? 0 : 1;
            var addr = toAddress(log.stack.peek(idx).toString(16));
            var addrHex = toHex(addr);
            if (this.currentLevel.contractSize[addrHex] == null &&
                !isAllowedPrecompiled(addr)) {
                this.currentLevel.contractSize[addrHex] = {
                    contractSize: db.getCode(addr).length,
                    opcode: opcode
                };
            }
        }
        // [OP-012]
        if (this.lastOp === "GAS" && !opcode.includes("CALL")) {
            // count "GAS" opcode only if not followed by "CALL"
            this.countSlot(this.currentLevel.opcodes, "GAS");
        }
        if (opcode !== "GAS") {
            // ignore "unimportant" opcodes:
            if (opcode.match(/^(DUP\d+|PUSH\d+|SWAP\d+|POP|ADD|SUB|MUL|DIV|EQ|LTE?|S?GTE?|SLT|SH[LR]|AND|OR|NOT|ISZERO)$/) == null) {
                this.countSlot(this.currentLevel.opcodes, opcode);
            }
        }
        this.lastOp = opcode;
        if (opcode === "SLOAD" ||
            opcode === "SSTORE" ||
            opcode === "TLOAD" ||
            opcode === "TSTORE") {
            var slot = toWord(log.stack.peek(0).toString(16));
            var slotHex = toHex(slot);
            var addr = log.contract.getAddress();
            var addrHex = toHex(addr);
            var access = this.currentLevel.access[addrHex];
            if (access == null) {
                access = {
                    reads: {},
                    writes: {}
                };
                this.currentLevel.access[addrHex] = access;
            }
            if (opcode === "SLOAD" || opcode === "TLOAD") {
                // read slot values before this UserOp was created
                // (so saving it if it was written before the first read)
                if (access.reads[slotHex] == null &&
                    access.writes[slotHex] == null) {
                    access.reads[slotHex] = toHex(db.getState(addr, slot));
                }
            }
            else {
                this.countSlot(access.writes, slotHex);
            }
        }
        if (opcode === "KECCAK256") {
            // collect keccak on 64-byte blocks
            var ofs = Number.parseInt(log.stack.peek(0).toString());
            var len = Number.parseInt(log.stack.peek(1).toString());
            // currently, solidity uses only 2-word (6-byte) for a key. this might change..
            // still, no need to return too much
            if (len > 20 && len < 512) {
                this.keccak.push(this.memoryHex(log, ofs, len));
            }
        }
        else if (opcode.startsWith("LOG")) {
            var count = Number.parseInt(opcode.substring(3));
            var ofs = Number.parseInt(log.stack.peek(0).toString());
            var len = Number.parseInt(log.stack.peek(1).toString());
            var topics = [];
            for (var i = 0; i < count; i++) {
                topics.push("0x" + log.stack.peek(2 + i).toString(16));
            }
            var data = this.memoryHex(log, ofs, len);
            this.logs.push({
                topics: topics,
                data: data
            });
        }
    }
}`;
