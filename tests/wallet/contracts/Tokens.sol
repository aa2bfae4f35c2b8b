// SPDX-License-Identifier: Apache-2.0
// Test contracts of the wallet's Ethereum tests (compiled by solcjs from npm at test time).
pragma solidity ^0.8.20;

/// A minimal honest ERC-20: the whole supply to the deployer.
contract Token {
    mapping(address => uint256) public balanceOf;
    event Transfer(address indexed from, address indexed to, uint256 value);

    constructor(uint256 supply) {
        balanceOf[msg.sender] = supply;
        emit Transfer(address(0), msg.sender, supply);
    }

    function transfer(address to, uint256 value) external returns (bool) {
        require(balanceOf[msg.sender] >= value, "balance");
        balanceOf[msg.sender] -= value;
        balanceOf[to] += value;
        emit Transfer(msg.sender, to, value);
        return true;
    }
}

/// A lying token: transfer() emits Transfer but moves nothing and returns false.
contract FalseToken {
    mapping(address => uint256) public balanceOf;
    event Transfer(address indexed from, address indexed to, uint256 value);

    function transfer(address to, uint256 value) external returns (bool) {
        emit Transfer(msg.sender, to, value);
        return false;
    }
}

/// Reverted calls: a Transfer log then a revert; ETH forwarded then a revert.
contract Reverter {
    event Transfer(address indexed from, address indexed to, uint256 value);

    function logThenRevert(address to, uint256 value) external {
        emit Transfer(msg.sender, to, value);
        revert("reverted after logging");
    }

    function forwardThenRevert(address payable to) external payable {
        (bool ok, ) = to.call{value: msg.value}("");
        require(ok, "forward");
        revert("reverted after forwarding");
    }
}
