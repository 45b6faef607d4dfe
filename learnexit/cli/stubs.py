"""Commands of the contract whose issues have not landed yet."""
