"""Small image files for the loader's tests."""

from PIL import Image


def save(image, path, **options):
    image.save(path, **options)
    return path


def gray_file(folder, name, shade, size=(20, 20)):
    return save(Image.new("L", size, shade), folder / name)


def flatten(images):
    return images.reshape(len(images), -1)
