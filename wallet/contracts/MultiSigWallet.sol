// SPDX-License-Identifier: Apache-2.0
// bursa's M-of-N Ethereum custody wallet (warm/cold tier above the hot wallet's limits).
//
// The design is SimpleMultiSig's (Christian Lundkvist, 2017; reviewed, widely deployed):
// owners sign an EIP-712 typed message off line; anyone holding M signatures could
// submit, but the message names its `executor` (bursa's hot account), so only that
// account can. No owner management, no modules, no delegatecall: the owner set and the
// threshold are fixed at deployment (a new set is a new contract and a sweep).
//
// Replay protection: the EIP-712 domain binds the chain id and this contract's address;
// the message binds `nonce`, which increases by one per execution, so every signed
// message executes at most once, and a message signed again at another gas price
// (the outer transaction's fee bump) is the same message with the same nonce.
pragma solidity ^0.8.20;

contract MultiSigWallet {
    bytes32 private constant DOMAIN_TYPEHASH = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    );
    bytes32 private constant TX_TYPEHASH = keccak256(
        "MultiSigTransaction(address destination,uint256 value,bytes data,uint256 nonce,"
        "address executor,uint256 gasLimit)"
    );
    // secp256k1n / 2: signatures with a higher s are malleable copies and refused.
    uint256 private constant HALF_N =
        0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    bytes32 public immutable domainSeparator;
    uint256 public immutable threshold;
    uint256 public nonce;
    mapping(address => bool) public isOwner;
    address[] private ownersArr;

    event Executed(uint256 indexed nonce, address indexed destination, uint256 value);
    event Deposit(address indexed from, uint256 value);

    constructor(uint256 threshold_, address[] memory owners_) {
        require(owners_.length <= 20, "too many owners");
        require(threshold_ > 0 && threshold_ <= owners_.length, "bad threshold");
        address last = address(0);
        for (uint256 i = 0; i < owners_.length; i++) {
            require(owners_[i] > last, "owners must be strictly increasing");
            isOwner[owners_[i]] = true;
            last = owners_[i];
        }
        ownersArr = owners_;
        threshold = threshold_;
        domainSeparator = keccak256(
            abi.encode(
                DOMAIN_TYPEHASH,
                keccak256("BursaMultiSig"),
                keccak256("1"),
                block.chainid,
                address(this)
            )
        );
    }

    /// The owners, in increasing order.
    function owners() external view returns (address[] memory) {
        return ownersArr;
    }

    /// The EIP-712 digest the owners sign for one call at the current nonce.
    function digestOf(
        address destination,
        uint256 value,
        bytes calldata data,
        address executor,
        uint256 gasLimit
    ) public view returns (bytes32) {
        bytes32 inputHash = keccak256(
            abi.encode(TX_TYPEHASH, destination, value, keccak256(data), nonce, executor, gasLimit)
        );
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator, inputHash));
    }

    /// Execute one call signed by `threshold` owners. `signatures` is `threshold` times
    /// r (32 bytes) || s (32 bytes) || v (1 byte), ordered by increasing signer address
    /// (so no owner counts twice).
    function execute(
        bytes calldata signatures,
        address destination,
        uint256 value,
        bytes calldata data,
        address executor,
        uint256 gasLimit
    ) external {
        require(executor == msg.sender || executor == address(0), "wrong executor");
        checkSignatures(digestOf(destination, value, data, executor, gasLimit), signatures);
        // Effects before the interaction: a re-entrant call sees the new nonce.
        uint256 executed = nonce;
        nonce = executed + 1;
        (bool ok, ) = destination.call{value: value, gas: gasLimit}(data);
        require(ok, "call failed");
        emit Executed(executed, destination, value);
    }

    function checkSignatures(bytes32 digest, bytes calldata signatures) private view {
        require(signatures.length == threshold * 65, "wrong number of signatures");
        address last = address(0);
        for (uint256 i = 0; i < threshold; i++) {
            bytes32 r = bytes32(signatures[i * 65:i * 65 + 32]);
            bytes32 s = bytes32(signatures[i * 65 + 32:i * 65 + 64]);
            uint8 v = uint8(signatures[i * 65 + 64]);
            require(uint256(s) <= HALF_N, "malleable signature");
            require(v == 27 || v == 28, "bad v");
            address signer = ecrecover(digest, v, r, s);
            require(signer != address(0) && signer > last && isOwner[signer], "bad signature");
            last = signer;
        }
    }

    receive() external payable {
        emit Deposit(msg.sender, msg.value);
    }
}
