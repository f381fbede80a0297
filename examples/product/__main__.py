from examples.product.app import main

main()
