"""Images in: IMAGES_DIR -> in-memory uint8 arrays, grouped/stratified splits, training-time augmentation."""
