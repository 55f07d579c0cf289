// SPDX-License-Identifier: Apache-2.0
// A minimal pool for tickgate's EVM tests: it holds no tokens and moves none; it only emits
// the Uniswap v2 Swap and Sync events and the Uniswap v3 Swap event, with their real
// signatures, for the amounts it is given.
pragma solidity 0.8.37;

contract TestPool {
    address public token0;
    address public token1;
    uint112 public reserve0;
    uint112 public reserve1;

    // Uniswap v2 (UniswapV2Pair)
    event Swap(
        address indexed sender,
        uint256 amount0In,
        uint256 amount1In,
        uint256 amount0Out,
        uint256 amount1Out,
        address indexed to
    );
    event Sync(uint112 reserve0, uint112 reserve1);

    // Uniswap v3 (IUniswapV3PoolEvents)
    event Swap(
        address indexed sender,
        address indexed recipient,
        int256 amount0,
        int256 amount1,
        uint160 sqrtPriceX96,
        uint128 liquidity,
        int24 tick
    );

    constructor(address token0_, address token1_) {
        token0 = token0_;
        token1 = token1_;
    }

    function swapV2(uint256 amount0In, uint256 amount1In, uint256 amount0Out, uint256 amount1Out, address to)
        external
    {
        reserve0 = uint112(uint256(reserve0) + amount0In - amount0Out);
        reserve1 = uint112(uint256(reserve1) + amount1In - amount1Out);
        emit Swap(msg.sender, amount0In, amount1In, amount0Out, amount1Out, to);
        emit Sync(reserve0, reserve1);
    }

    function setReserves(uint112 r0, uint112 r1) external {
        reserve0 = r0;
        reserve1 = r1;
        emit Sync(r0, r1);
    }

    function swapV3(int256 amount0, int256 amount1, uint160 sqrtPriceX96, uint128 liquidity, int24 tick, address recipient)
        external
    {
        emit Swap(msg.sender, recipient, amount0, amount1, sqrtPriceX96, liquidity, tick);
    }
}
